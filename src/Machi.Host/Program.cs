using Machi.Host.Cli;

return await MachiCli.RunAsync(args, Console.Out, Console.Error);
