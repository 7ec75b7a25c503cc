typedef int shoal__placeholder_bench_commits; /* placeholder, replaced by its implementation */
