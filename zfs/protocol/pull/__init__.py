"""The pull protocol's cores: ``owner`` (the book of shares), ``serving`` (the commands
it answers with), ``budget`` (chunk bytes in flight from the owner) and ``download``
(one RID at a recipient)."""
