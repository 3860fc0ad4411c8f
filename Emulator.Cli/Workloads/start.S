/*
 * Startup of the compiled workloads. emu enters at _start in 64-bit long mode, CPL 0, interrupts off, with
 * RSP at the top of low RAM and RDI holding the round count (see CompiledWorkload.cs). It enables SSE
 * (CR4.OSFXSR and OSXMMEXCPT, Intel SDM vol. 3 2.5: without them SSE instructions raise #UD) because gcc's
 * x86-64 code may use it, zeroes .bss, calls workload_main(rounds) and then ends the run.
 */
    .section .text.start, "ax"
    .globl _start
_start:
    mov %cr4, %rax
    or $0x600, %rax
    mov %rax, %cr4
    mov %rdi, %rbx
    lea __bss_start(%rip), %rdi
    lea __bss_end(%rip), %rcx
    sub %rdi, %rcx
    xor %eax, %eax
    rep stosb
    mov %rbx, %rdi
    and $-16, %rsp
    call workload_main
    /* isa-debug-exit (port 0xf4): writing 0 ends the run with exit status 1. */
    xor %eax, %eax
    out %eax, $0xf4
1:  hlt
    jmp 1b

    .section .note.GNU-stack, "", @progbits
