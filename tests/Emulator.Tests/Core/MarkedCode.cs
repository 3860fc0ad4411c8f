using Iced.Intel;

namespace Emulator.Tests.Core;

/// <summary>
/// Guest code assembled with named labels whose addresses the test reads back: <c>l["x"]</c> is the label (made on
/// first use, so a forward jump can name it) and <c>l.Place("x")</c> puts it on the next instruction.
/// </summary>
public sealed class MarkedCode
{
    private readonly Assembler _a;
    private readonly Label[] _labels = new Label[32];
    private readonly Dictionary<string, int> _index = [];

    private MarkedCode(Assembler a) => _a = a;

    /// <summary>Addresses of the placed labels after <see cref="Assemble"/>.</summary>
    public Dictionary<string, ulong> At { get; } = [];

    public byte[] Code { get; private set; } = [];

    public Label this[string name] => _labels[Slot(name)];

    public void Place(string name) => _a.Label(ref _labels[Slot(name)]);

    private int Slot(string name)
    {
        if (!_index.TryGetValue(name, out int i))
        {
            i = _index.Count;
            _index[name] = i;
            _labels[i] = _a.CreateLabel(name);
        }

        return i;
    }

    public static MarkedCode Assemble(int bitness, ulong at, Action<Assembler, MarkedCode> body)
    {
        var m = new MarkedCode(new Assembler(bitness));
        body(m._a, m);
        using var ms = new MemoryStream();
        var result = m._a.Assemble(new StreamCodeWriter(ms), at, BlockEncoderOptions.ReturnNewInstructionOffsets);
        m.Code = ms.ToArray();
        foreach (var (name, i) in m._index)
        {
            m.At[name] = result.GetLabelRIP(m._labels[i]);
        }

        return m;
    }
}
