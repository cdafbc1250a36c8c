"""An SMTP relay for the delivery tests: aiosmtpd, an independent SMTP server, on a loopback
port of its own choosing, which it prints on the first line of standard output.

Every message it accepts is written to OUT_DIR as <n>.eml (written under a temporary name,
then renamed, so a reader never sees half a message). Recipients whose local part starts with
"bounce" are refused at RCPT with 550 5.1.1. With --auth USER:PASSWORD, clients must log in.

Usage: python3 relay.py OUT_DIR [--auth USER:PASSWORD]
"""

import asyncio
import itertools
import os
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Handler:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.counter = itertools.count(1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.split("@", 1)[0].lower().startswith("bounce"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        n = next(self.counter)
        final = os.path.join(self.out_dir, "%d.eml" % n)
        partial = os.path.join(self.out_dir, ".%d.partial" % n)
        with open(partial, "wb") as f:
            f.write(envelope.original_content)
        os.rename(partial, final)
        return "250 2.0.0 Ok: queued as RELAY%d" % n


def authenticator_for(credentials):
    user, password = credentials.encode().split(b":", 1)

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user
            and auth_data.password == password
        )
        # Not "handled": aiosmtpd answers a refusal with 535 5.7.8 itself.
        return AuthResult(success=ok, handled=False)

    return authenticate


async def main():
    out_dir = sys.argv[1]
    credentials = None
    if len(sys.argv) == 4 and sys.argv[2] == "--auth":
        credentials = sys.argv[3]
    handler = Handler(out_dir)

    def factory():
        if credentials is None:
            return SMTP(handler, enable_SMTPUTF8=True)
        return SMTP(
            handler,
            enable_SMTPUTF8=True,
            authenticator=authenticator_for(credentials),
            auth_required=True,
            auth_require_tls=False,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    # Runs until the test ends: it kills this process, or closes our standard input.
    await loop.run_in_executor(None, sys.stdin.read)


asyncio.run(main())
