"""The pure core: reads the program and the ledger, folds state, decides and plans."""
