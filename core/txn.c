typedef int shoal__placeholder_txn; /* placeholder, replaced by its implementation */
