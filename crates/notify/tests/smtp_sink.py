"""A local SMTP sink for the email tests (aiosmtpd).

Usage: smtp_sink.py OUT_FILE PORT USER PASSWORD
Accepts mail on 127.0.0.1:PORT, requires AUTH (PLAIN/LOGIN, allowed without TLS because it is a
local test sink) with USER/PASSWORD, and appends one JSON line per message to OUT_FILE. Prints
READY once listening; stops when stdin closes.
"""
import json
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

out, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


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


controller = Controller(Handler(), hostname="127.0.0.1", port=port,
                        authenticator=authenticator, auth_require_tls=False, auth_required=True)
controller.start()
print("READY", flush=True)
sys.stdin.read()
controller.stop()
