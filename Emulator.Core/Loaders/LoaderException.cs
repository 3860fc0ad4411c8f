namespace Emulator.Core.Loaders;

/// <summary>
/// An image that cannot be booted (unknown format, truncated, segments outside RAM). The message is one
/// line meant for the user; nothing has run in the guest when it is thrown.
/// </summary>
public sealed class LoaderException : Exception
{
    public LoaderException(string message)
        : base(message)
    {
    }

    public LoaderException()
    {
    }

    public LoaderException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
