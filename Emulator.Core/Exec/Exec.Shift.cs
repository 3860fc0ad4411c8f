namespace Emulator.Core.Exec;

public static unsafe partial class Exec
{
    private static void RegisterShift(HandlerTable t)
    {
    }
}
