"""The site's I/O thread and everything only it touches.

``thread`` runs the poll loop and owns every socket, ``reader`` reads and decodes
what peers sent; ``links`` moves each peer link through hello, up, down and refused
(``ports``: what it talks to); ``handshake`` and ``greeting`` are the rules of opening
a link; ``peers`` is the I/O thread's table of peers and what it holds for them;
``frames`` and ``sockets`` send, receive and configure; ``outbox`` and ``calls`` are how
other threads hand it messages and work, and ``bundler`` sends the small ones for one
peer as one. Nothing outside this package touches a socket; only ``actors.site`` drives
it.
"""
