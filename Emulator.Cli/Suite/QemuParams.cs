using System.Globalization;
using Emulator.Core.Cpu;

namespace Emulator.Cli.Suite;

/// <summary>
/// The QEMU options of a case (<c>qemu_params</c>) in emu's terms: <c>-cpu MODEL,+a,-b,k=v</c> becomes a
/// feature list, <c>-m</c> the RAM size, <c>-smp</c> the vCPU count. Every CPU model is emu's one CPU; a
/// feature emu does not know or does not implement is dropped with a note, as QEMU/KVM warns and drops
/// features the host lacks. Options that change what the guest can observe in a way emu cannot model
/// (another machine type, a device emu lacks, KVM itself) make the case a skip; the rest are noted.
/// </summary>
internal sealed class QemuParams
{
    /// <summary>Devices of PLATFORM.md's machine that a <c>-device</c> option may name.</summary>
    private static readonly string[] s_devices = ["pc-testdev", "isa-debug-exit"];

    /// <summary>Options that take no value.</summary>
    private static readonly string[] s_flags = ["-enable-kvm", "-no-reboot", "-nodefaults", "-no-hpet", "-no-acpi"];

    public ulong? Memory { get; private set; }
    public int? Cpus { get; private set; }
    public List<string> CpuFeatures { get; } = [];
    public string? SkipReason { get; private set; }
    public List<string> Notes { get; } = [];

    public static QemuParams Parse(string text)
    {
        var p = new QemuParams();
        string[] words = text.Split([' ', '\t', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries);
        for (int i = 0; i < words.Length; i++)
        {
            string option = words[i];
            string? value = null;
            if (option.StartsWith('-') && !s_flags.Contains(option) && i + 1 < words.Length && !words[i + 1].StartsWith('-'))
            {
                value = UnittestsCfg.StripQuotes(words[++i]);
            }

            p.Apply(option.StartsWith("--", StringComparison.Ordinal) ? option[1..] : option, value);
        }

        return p;
    }

    /// <summary>QEMU's <c>pc</c> machine (and its versioned names) is the machine PLATFORM.md describes.</summary>
    public static bool IsPcMachine(string type) =>
        type is "pc" or "pc-i440fx" || type.StartsWith("pc-i440fx-", StringComparison.Ordinal);

    private void Apply(string option, string? value)
    {
        switch (option)
        {
            case "-cpu" when value != null:
                ApplyCpu(value);
                break;
            case "-m" when value != null:
                string size = value.Split(',')[0];
                size = size.StartsWith("size=", StringComparison.Ordinal) ? size[5..] : size;
                if (Values.TryParseSize(size, out ulong bytes))
                {
                    Memory = bytes;
                }
                else
                {
                    Notes.Add($"-m {value}: not a size, ignored");
                }

                break;
            case "-smp" when value != null:
                string count = value.Split(',')[0];
                count = count.StartsWith("cpus=", StringComparison.Ordinal) ? count[5..] : count;
                if (int.TryParse(count, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n >= 1)
                {
                    Cpus = n;
                }
                else
                {
                    Notes.Add($"-smp {value}: not understood, ignored");
                }

                break;
            case "-M" or "-machine" when value != null:
                ApplyMachine(value);
                break;
            case "-device" when value != null:
                string device = value.Split(',')[0];
                if (device.StartsWith("driver=", StringComparison.Ordinal))
                {
                    device = device[7..];
                }

                if (!s_devices.Contains(device))
                {
                    Skip($"needs device {device}");
                }

                break;
            case "-enable-kvm":
                Skip("needs KVM");
                break;
            case "-accel" when value != null:
                ApplyAccel(value);
                break;
            default:
                Notes.Add(value == null ? $"QEMU option {option} ignored" : $"QEMU option {option} {value} ignored");
                break;
        }
    }

    private void ApplyCpu(string value)
    {
        string[] items = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        for (int i = 0; i < items.Length; i++)
        {
            string item = items[i];
            if (i == 0 && item[0] is not ('+' or '-'))
            {
                // The model: max, host, qemu64, Opteron_G1, ... all map to emu's one CPU.
                if (item is not ("max" or "host"))
                {
                    Notes.Add($"-cpu {item}: emu's default CPU");
                }

                continue;
            }

            bool on = item[0] != '-';
            string name = item[0] is '+' or '-' ? item[1..] : item;
            int eq = name.IndexOf('=', StringComparison.Ordinal);
            if (eq >= 0)
            {
                string v = name[(eq + 1)..];
                name = name[..eq];
                if (v is "on" or "true" or "yes")
                {
                    on = true;
                }
                else if (v is "off" or "false" or "no")
                {
                    on = false;
                }
                else
                {
                    Notes.Add($"-cpu {item}: property not modelled, dropped");
                    continue;
                }
            }

            if (!Core.Cpu.CpuFeatures.TryParseName(name, out CpuFeature feature))
            {
                Notes.Add($"-cpu {item}: feature unknown to emu, dropped");
            }
            else if (on && !Core.Cpu.CpuFeatures.Info(feature).Implemented)
            {
                Notes.Add($"-cpu {item}: feature not implemented, dropped");
            }
            else
            {
                CpuFeatures.RemoveAll(f => f[1..].Equals(name, StringComparison.OrdinalIgnoreCase));
                CpuFeatures.Add((on ? "+" : "-") + name);
            }
        }
    }

    private void ApplyMachine(string value)
    {
        string[] items = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        for (int i = 0; i < items.Length; i++)
        {
            string item = items[i];
            int eq = item.IndexOf('=', StringComparison.Ordinal);
            string key = eq < 0 ? (i == 0 ? "type" : item) : item[..eq];
            string v = eq < 0 ? item : item[(eq + 1)..];
            switch (key)
            {
                case "type":
                    if (!IsPcMachine(v))
                    {
                        Skip($"needs machine type {v}");
                    }

                    break;
                case "accel":
                    ApplyAccel(v);
                    break;
                default:
                    Notes.Add($"-machine {item} ignored");
                    break;
            }
        }
    }

    /// <summary><c>-accel X</c> or <c>-machine accel=X</c>: emu is a TCG-like emulator; any other accelerator skips the case.</summary>
    private void ApplyAccel(string accel)
    {
        if (!accel.StartsWith("tcg", StringComparison.Ordinal))
        {
            Skip(accel.StartsWith("kvm", StringComparison.Ordinal) ? "needs KVM" : $"needs accelerator {accel}");
        }
    }

    private void Skip(string reason) => SkipReason ??= reason;
}
