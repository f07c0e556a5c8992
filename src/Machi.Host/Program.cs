using Machi.Broker.Storage;
using Machi.Host.Cli;

SqliteRuntime.Configure();
return await MachiCli.RunAsync(args, Console.Out, Console.Error);
