"""A local SMTP sink for the email tests (aiosmtpd).

Usage: smtp_sink.py OUT_FILE USER PASSWORD
Accepts mail on a free port of 127.0.0.1, requires AUTH (PLAIN/LOGIN, allowed without TLS because
it is a local test sink) with USER/PASSWORD, and appends one JSON line per message to OUT_FILE.
Prints `READY <port>` once listening on that port; stops when stdin closes.
"""
import errno
import json
import socket
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

out, user, password = sys.argv[1], sys.argv[2], sys.argv[3]


class Handler:
    async def handle_DATA(self, server, session, envelope):
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps({
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "authenticated": bool(session.authenticated),
                "data": envelope.content.decode("utf-8", "replace"),
            }) + "\n")
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login.decode() == user
          and auth_data.password.decode() == password)
    return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# aiosmtpd's Controller cannot bind port 0 (it connects to its own port to check it is up), so
# take a free port and try again if another process took it first: the port announced is the one
# this sink listens on.
for attempt in range(20):
    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port,
                            authenticator=authenticator, auth_require_tls=False, auth_required=True)
    try:
        controller.start()
        break
    except OSError as e:
        if e.errno != errno.EADDRINUSE or attempt == 19:
            raise
print(f"READY {port}", flush=True)
sys.stdin.read()
controller.stop()
