"""Our adapter, named like the paper's package so its policy files import it unchanged (see observations)."""
