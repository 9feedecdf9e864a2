"""The push protocol's cores: ``sender`` (one file to its targets) and ``receiver``
(every inbound stream of a site)."""
