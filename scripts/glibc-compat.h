/*
 * scripts/glibc-compat.h — force-included (-include) into the glibc prebuilds by
 * scripts/prebuilds.js, never into a source build.
 *
 * glibc 2.34 moved libpthread into libc and gave pthread_once a new symbol version
 * (GLIBC_2.34). A binary built on a newer glibc would then refuse to load on glibc < 2.34
 * (Debian 11, Ubuntu 20.04, RHEL 8), although Node 20 itself runs on glibc >= 2.28. Binding
 * the old version keeps the prebuilds loadable there: every glibc still defines it (in
 * libpthread.so.0 before 2.34, as a compatibility symbol of libc.so.6 since). The other symbols
 * the addon takes from libc are old enough already; scripts/check-prebuilds.js checks the
 * highest version any prebuild needs.
 */
#if defined(__x86_64__)
__asm__(".symver pthread_once,pthread_once@GLIBC_2.2.5");
#elif defined(__aarch64__)
__asm__(".symver pthread_once,pthread_once@GLIBC_2.17");
#endif
