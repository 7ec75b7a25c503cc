typedef int shoal__placeholder_bench_list; /* placeholder, replaced by its implementation */
