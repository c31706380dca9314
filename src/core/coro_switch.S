/*
 * Context switch for k2a coroutines: saves the callee-saved registers of the running context on its
 * stack, stores its stack pointer in *from, loads *to's stack pointer and restores its registers.
 * void k2a__coro_switch(void **from_sp, void *const *to_sp). A new coroutine's stack is laid out by
 * coro.c so that the first switch "returns" into k2a__coro_trampoline with the coroutine in a
 * callee-saved register. x86-64 (SysV) and aarch64 (AAPCS64); other targets use ucontext (coro.c).
 */
#if defined(__x86_64__) && !defined(K2A_CORO_UCONTEXT)
    .text
    .globl k2a__coro_switch
    .hidden k2a__coro_switch
    .type k2a__coro_switch, @function
k2a__coro_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq (%rsi), %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size k2a__coro_switch, .-k2a__coro_switch

    .globl k2a__coro_trampoline
    .hidden k2a__coro_trampoline
    .type k2a__coro_trampoline, @function
k2a__coro_trampoline:
    movq %r12, %rdi
    call k2a__coro_main
    ud2
    .size k2a__coro_trampoline, .-k2a__coro_trampoline

#elif defined(__aarch64__) && !defined(K2A_CORO_UCONTEXT)
    .text
    .globl k2a__coro_switch
    .hidden k2a__coro_switch
    .type k2a__coro_switch, %function
k2a__coro_switch:
    sub sp, sp, #160
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mov x2, sp
    str x2, [x0]
    ldr x2, [x1]
    mov sp, x2
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    add sp, sp, #160
    ret
    .size k2a__coro_switch, .-k2a__coro_switch

    .globl k2a__coro_trampoline
    .hidden k2a__coro_trampoline
    .type k2a__coro_trampoline, %function
k2a__coro_trampoline:
    mov x0, x19
    bl k2a__coro_main
    brk #0
    .size k2a__coro_trampoline, .-k2a__coro_trampoline
#endif

#if defined(__linux__) && defined(__ELF__)
    .section .note.GNU-stack, "", %progbits
#endif
