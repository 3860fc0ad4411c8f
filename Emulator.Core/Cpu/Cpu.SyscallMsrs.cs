namespace Emulator.Core.Cpu; public sealed partial class Cpu { public ulong Star, Lstar, Cstar, Sfmask, KernelGsBase, SysenterCs, SysenterEsp, SysenterEip; }
