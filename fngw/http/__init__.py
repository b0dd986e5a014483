"""What every HTTP resource of the gateway shares, whatever it serves: the one JSON error shape,
bounded body reading, path decoding, CORS preflight recognition, the environ keys the server fills,
and noticing a client that hangs up. A leaf: it imports only Falcon and the standard library, so
every domain package may use it and it knows none of them, nor gunicorn.
"""
