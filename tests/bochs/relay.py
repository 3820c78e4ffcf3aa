#!/usr/bin/env python3
"""Bochs COM2 <-> ptctl relay for the Bochs tests (Bochs serial ports speak TCP, not unix
sockets, and Bochs connects once while ptctl connects once per command).

    relay.py BOCHS_PORT CLIENT_PORT

Listens on 127.0.0.1:BOCHS_PORT for Bochs (com2 mode=socket-client) and on
127.0.0.1:CLIENT_PORT for clients, one at a time; bytes flow both ways between Bochs and
the current client. Bytes from Bochs while no client is connected are dropped (the
protocol retransmits). Prints "relay: listening" on stdout once both sockets listen."""
import selectors
import socket
import sys


def listen(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(4)
    return s


def main():
    bochs_l, client_l = listen(int(sys.argv[1])), listen(int(sys.argv[2]))
    print("relay: listening %d %d" % (bochs_l.getsockname()[1], client_l.getsockname()[1]),
          flush=True)
    sel = selectors.DefaultSelector()
    sel.register(bochs_l, selectors.EVENT_READ, "bochs_l")
    sel.register(client_l, selectors.EVENT_READ, "client_l")
    bochs = client = None
    while True:
        for key, _ in sel.select():
            what = key.data
            if what == "bochs_l":
                bochs, _ = bochs_l.accept()
                sel.register(bochs, selectors.EVENT_READ, "bochs")
            elif what == "client_l":
                if client is not None:
                    sel.unregister(client)
                    client.close()
                client, _ = client_l.accept()
                sel.register(client, selectors.EVENT_READ, "client")
            elif what == "bochs":
                data = bochs.recv(65536)
                if not data:
                    return
                if client is not None:
                    try:
                        client.sendall(data)
                    except OSError:
                        pass
            elif what == "client":
                data = client.recv(65536)
                if not data:
                    sel.unregister(client)
                    client.close()
                    client = None
                elif bochs is not None:
                    bochs.sendall(data)


if __name__ == "__main__":
    main()
