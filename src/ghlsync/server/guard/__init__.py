"""The connection guard of `ghlsync serve`: what a client may cost the server before and
while it sends a request (header and body deadlines, connection cap, head bound, lingering
close), over either of uvicorn's HTTP parsers.

`_settings` holds the limits and `uvicorn_settings`, `_conn` the parser-independent guard,
`_httptools` and `_h11` the two uvicorn protocols it runs over (httptools when it imports).
"""
