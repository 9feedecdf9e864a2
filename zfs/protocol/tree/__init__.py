"""What a tree of files is on the wire, shared by push and pull of folders (stdlib only).

``paths`` is the rule for relative paths and link targets that arrive from the network;
``manifest`` the list of a tree's entries and its one encoding; ``layout`` the virtual
byte stream (the files' contents end to end in manifest order), how a plan of what each
side already holds shortens it, and which pieces of which files a range of it covers.
"""
