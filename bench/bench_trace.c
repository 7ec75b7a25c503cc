typedef int shoal__placeholder_bench_trace; /* placeholder, replaced by its implementation */
