namespace Machi.Bench;

/// <summary>A failure that ends the run with a message for the user rather than a stack trace.</summary>
internal sealed class BenchFailure : Exception
{
    public BenchFailure()
    {
    }

    public BenchFailure(string message)
        : base(message)
    {
    }

    public BenchFailure(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
