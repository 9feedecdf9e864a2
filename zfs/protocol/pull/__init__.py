"""The pull protocol's cores: ``owner`` (the book of shares), ``budget`` (chunk bytes
in flight from the owner) and ``download`` (one RID at a recipient)."""
