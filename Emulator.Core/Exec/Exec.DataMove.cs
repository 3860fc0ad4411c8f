namespace Emulator.Core.Exec;

public static unsafe partial class Exec
{
    private static void RegisterDataMove(HandlerTable t)
    {
    }
}
