namespace Emulator.Core.Exec;

public static unsafe partial class Exec
{
    private static void RegisterX87(HandlerTable t)
    {
    }
}
