namespace Emulator.Svm;

internal static class SvmAssembly;
