using Machi.Broker;

var builder = WebApplication.CreateBuilder(args);
builder.Services.AddMachiBroker(builder.Configuration);
var app = builder.Build();
app.MapMachiBroker();
app.Run();
