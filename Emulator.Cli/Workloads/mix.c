/*
 * "mix": the compiled integer workload of `emu bench cpu --workload mix` (docs/workloads.md).
 * Each round runs five small kernels whose sizes and data depend on the round number: a sieve of
 * Eratosthenes, a quicksort of an LCG-generated array, a table-driven CRC-32, an integer matrix
 * multiply, and number formatting in a run-time base with an FNV-1a hash of the digits plus Euclid's
 * gcd (real DIV instructions). Every kernel's result is folded into one 64-bit checksum, printed on
 * COM1 as "checksum: 0x<16 hex digits>". MixReference.cs computes the same value on the host; keep
 * the two in step. Only unsigned arithmetic wraps; signed values stay far from overflow.
 */
typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned char u8;
typedef long i64;
typedef int i32;

#define SIEVE_MAX 16384
#define SORT_N 1024
#define CRC_BYTES 4096
#define MAT_N 24
#define FORMAT_COUNT 600

static u8 composite[SIEVE_MAX];
static u32 keys[SORT_N];
static u8 buffer[CRC_BYTES];
static u32 crc_table[256];
static i32 mat_a[MAT_N][MAT_N], mat_b[MAT_N][MAT_N], mat_c[MAT_N][MAT_N];
static u32 lcg_state;

/* gcc may emit calls to these for loops and copies even when freestanding; the attribute keeps it from
 * turning their own loops back into calls to themselves. */
#define NO_PATTERNS __attribute__((optimize("no-tree-loop-distribute-patterns")))
NO_PATTERNS void *memset(void *dst, int c, unsigned long n)
{
    u8 *d = dst;
    while (n--)
        *d++ = (u8)c;
    return dst;
}

NO_PATTERNS void *memcpy(void *dst, const void *src, unsigned long n)
{
    u8 *d = dst;
    const u8 *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

static u32 lcg(void)
{
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return lcg_state;
}

static u64 sieve(u32 limit)
{
    u64 count = 0, sum = 0;
    for (u32 i = 0; i < limit; i++)
        composite[i] = 0;
    for (u32 i = 2; i < limit; i++) {
        if (composite[i])
            continue;
        count++;
        sum += i;
        for (u32 j = i * i; j < limit; j += i)
            composite[j] = 1;
    }
    return sum ^ (count << 40);
}

static void insertion_sort(u32 *a, i64 lo, i64 hi)
{
    for (i64 i = lo + 1; i <= hi; i++) {
        u32 v = a[i];
        i64 j = i - 1;
        while (j >= lo && a[j] > v) {
            a[j + 1] = a[j];
            j--;
        }
        a[j + 1] = v;
    }
}

static void quicksort(u32 *a, i64 lo, i64 hi)
{
    while (hi - lo > 12) {
        u32 pivot = a[lo + (hi - lo) / 2];
        i64 i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot)
                i++;
            while (a[j] > pivot)
                j--;
            if (i <= j) {
                u32 t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        }
        /* Recurse into the smaller side, loop on the larger: the stack stays O(log n). */
        if (j - lo < hi - i) {
            quicksort(a, lo, j);
            lo = i;
        } else {
            quicksort(a, i, hi);
            hi = j;
        }
    }
    insertion_sort(a, lo, hi);
}

static u64 sort_kernel(u32 n)
{
    for (u32 i = 0; i < n; i++)
        keys[i] = lcg() >> 8;
    quicksort(keys, 0, (i64)n - 1);
    u64 h = 0;
    for (u32 i = 0; i < n; i++) {
        if (i > 0 && keys[i - 1] > keys[i])
            h ^= 0xBAD0000000000000ul; /* never taken when the sort is right */
        h += (u64)keys[i] * (i + 1);
    }
    return h;
}

static void crc_init(void)
{
    for (u32 n = 0; n < 256; n++) {
        u32 c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

static u64 crc_kernel(u32 n)
{
    for (u32 i = 0; i < n; i++)
        buffer[i] = (u8)(lcg() >> 24);
    u32 crc = 0xFFFFFFFFu;
    for (u32 i = 0; i < n; i++)
        crc = crc_table[(crc ^ buffer[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

static u64 matrix_kernel(void)
{
    for (int i = 0; i < MAT_N; i++)
        for (int j = 0; j < MAT_N; j++) {
            mat_a[i][j] = (i32)(lcg() % 2001) - 1000;
            mat_b[i][j] = (i32)(lcg() % 2001) - 1000;
        }
    for (int i = 0; i < MAT_N; i++)
        for (int j = 0; j < MAT_N; j++) {
            i32 s = 0;
            for (int k = 0; k < MAT_N; k++)
                s += mat_a[i][k] * mat_b[k][j];
            mat_c[i][j] = s;
        }
    u64 h = 0;
    for (int i = 0; i < MAT_N; i++)
        for (int j = 0; j < MAT_N; j++)
            h = h * 31 + (u64)(i64)mat_c[i][j];
    return h;
}

static u32 format(u64 v, u32 base, char *out)
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    char tmp[72];
    u32 n = 0;
    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v != 0);
    for (u32 i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

static u64 gcd(u64 a, u64 b)
{
    while (b != 0) {
        u64 t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static u64 text_kernel(u32 count)
{
    char text[72];
    u64 hash = 0xCBF29CE484222325ul;
    u64 g = 0;
    for (u32 i = 0; i < count; i++) {
        u64 hi = lcg();
        u64 v = (hi << 32) | lcg();
        u32 base = 2 + lcg() % 35;
        u32 len = format(v, base, text);
        for (u32 k = 0; k < len; k++) {
            hash ^= (u8)text[k];
            hash *= 0x100000001B3ul;
        }
        g += gcd(v | 1, (lcg() | 1) * (u64)(base + 1));
    }
    return hash ^ g;
}

static u64 fold(u64 h, u64 v)
{
    h = ((h << 13) | (h >> 51)) ^ v;
    return h * 0x9E3779B97F4A7C15ul;
}

static void putc_com1(char c)
{
    u8 lsr;
    do
        __asm__ volatile("inb %1, %0" : "=a"(lsr) : "Nd"((unsigned short)0x3FD));
    while (!(lsr & 0x20)); /* 16550 LSR bit 5: transmit holding register empty */
    __asm__ volatile("outb %0, %1" : : "a"((u8)c), "Nd"((unsigned short)0x3F8));
}

static void puts_com1(const char *s)
{
    while (*s)
        putc_com1(*s++);
}

static void puthex(u64 v)
{
    for (int shift = 60; shift >= 0; shift -= 4)
        putc_com1("0123456789abcdef"[(v >> shift) & 0xF]);
}

void workload_main(u64 rounds)
{
    u64 h = 0x6D69780000000000ul; /* "mix" */
    crc_init();
    for (u64 r = 0; r < rounds; r++) {
        lcg_state = (u32)(r * 2654435761u) ^ 0x1234567u;
        h = fold(h, sieve(SIEVE_MAX - 64 * (u32)(r % 16)));
        h = fold(h, sort_kernel(SORT_N - (u32)(r % 8)));
        h = fold(h, crc_kernel(CRC_BYTES - (u32)(r % 5)));
        h = fold(h, matrix_kernel());
        h = fold(h, text_kernel(FORMAT_COUNT));
    }
    puts_com1("checksum: 0x");
    puthex(h);
    puts_com1("\n");
}
