Console.WriteLine("machi");
