typedef int shoal__placeholder_fsync_shim; /* placeholder, replaced by its implementation */
