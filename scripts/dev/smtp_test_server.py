#!/usr/bin/env python3
"""A controllable SMTP server for EDM Monitor's mailer tests and local development.

Built on aiosmtpd (`pip install aiosmtpd`; `cryptography` for --self-signed). It listens on
127.0.0.1 only, prints the port it listens on as the first line of stdout (useful with
--port 0), and records what it sees as JSON lines:

  --messages FILE     one line per accepted message:
                      {"event": "message", "mail_from", "rcpt_tos", "mail_options",
                       "data_b64" (exact octets after dot-unstuffing), "data" (UTF-8, lossy),
                       "peer", "tls", "auth_user", "queue_id", "connection", "received_at"}
  --connections FILE  one line per TCP connection: {"event": "connect", "connection", "peer",
                       "received_at"}

Behaviour is scriptable:
  --reply-plan 451,250   the final reply to the first message's DATA is 451, the second's 250;
                         once the plan is used up every message gets 250. A 421 in the plan
                         also closes the connection (RFC 5321 §3.8); "stall" never answers (the
                         client's timeout must end it). --plan-stage rcpt applies the plan to
                         RCPT TO instead of the end of DATA.
  --always 550           every message gets this code at the plan stage (overrides the plan).
  --rcpt-rule PATTERN=CODE  recipients matching the fnmatch PATTERN (case-insensitive) get
                         CODE at RCPT TO; repeatable, first match wins.
  --close-after-each     close the connection after each accepted message (the client must
                         reconnect for the next one).
  --421-after-each       answer the next MAIL FROM on a connection that already delivered a
                         message with 421 and close (a server that timed the idle client out).
TLS and AUTH:
  --self-signed DIR      write DIR/cert.pem and DIR/key.pem (CN=localhost, SAN localhost and
                         127.0.0.1, valid one day) and use them as --tls-cert/--tls-key.
  --tls-cert/--tls-key   PEM files for TLS.
  --starttls             offer STARTTLS (RFC 3207); --require-starttls refuses mail before it.
  --implicit-tls         TLS from the first byte (RFC 8314 §3.3, "port 465" style).
  --auth-user/--auth-password  offer AUTH PLAIN and LOGIN with these credentials (only over TLS
                         unless --auth-allow-plaintext); --auth-required refuses mail without it.

Exit with SIGTERM or SIGINT. Replies other than the scripted ones are aiosmtpd's own.
"""
import argparse
import asyncio
import base64
import datetime
import fnmatch
import itertools
import json
import os
import signal
import ssl
import sys
import uuid

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

DEFAULT_TEXT = {
    250: "2.0.0 Ok: queued as {queue_id}",
    421: "4.3.2 Service shutting down, closing connection (scripted)",
    450: "4.2.0 Mailbox unavailable (scripted)",
    451: "4.3.0 Temporary failure, try again later (scripted)",
    452: "4.3.1 Insufficient system storage (scripted)",
    550: "5.1.1 Mailbox unavailable (scripted)",
    552: "5.3.4 Message too big (scripted)",
    554: "5.7.1 Transaction failed (scripted)",
}


def reply_for(code, queue_id=""):
    text = DEFAULT_TEXT.get(code, "{0}.0.0 Scripted reply".format(code // 100) if code >= 400 else "Ok")
    return "{} {}".format(code, text.format(queue_id=queue_id))


STALL = "stall"


def parse_code(text):
    text = text.strip().lower()
    if text == STALL:
        return STALL
    if not text.isdigit() or not 200 <= int(text) <= 599:
        raise SystemExit("reply codes are 200...599 or 'stall', got {!r}".format(text))
    return int(text)


async def reply_or_stall(code, queue_id=""):
    if code == STALL:
        # Held until the client gives up and the connection closes (aiosmtpd cancels us then).
        await asyncio.sleep(3600)
    return reply_for(code, queue_id)


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


class JSONLines:
    """Appends one JSON object per line, flushed at once so a reader never sees half a line
    except while it is being written."""

    def __init__(self, path):
        self.file = open(path, "a", encoding="utf-8") if path else None

    def write(self, record):
        if self.file is None:
            return
        self.file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.file.flush()


class Behaviour:
    """Decides the scripted replies."""

    def __init__(self, args):
        self.plan = [parse_code(code) for code in args.reply_plan.split(",") if code.strip()] if args.reply_plan else []
        self.always = args.always
        self.stage = args.plan_stage
        self.rules = []
        for rule in args.rcpt_rule or []:
            pattern, _, code = rule.rpartition("=")
            if not pattern or not code.isdigit():
                raise SystemExit("--rcpt-rule needs PATTERN=CODE, got {!r}".format(rule))
            self.rules.append((pattern.lower(), int(code)))

    def next_code(self):
        """The scripted code for the next message at the plan stage; 250 when none applies."""
        if self.always is not None:
            return self.always
        if self.plan:
            return self.plan.pop(0)
        return 250

    def rcpt_code(self, address):
        for pattern, code in self.rules:
            if fnmatch.fnmatchcase(address.lower(), pattern):
                return code
        return None


class Handler:
    def __init__(self, args, behaviour, messages):
        self.args = args
        self.behaviour = behaviour
        self.messages = messages

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.args.close_421_after_each and server.messages_delivered > 0:
            return reply_for(421)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        code = self.behaviour.rcpt_code(address)
        if code is None and self.behaviour.stage == "rcpt":
            code = self.behaviour.next_code()
        if code is not None and code != 250:
            return await reply_or_stall(code)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        code = self.behaviour.next_code() if self.behaviour.stage == "data" else 250
        if code != 250:
            return await reply_or_stall(code)
        queue_id = uuid.uuid4().hex[:12].upper()
        data = envelope.original_content or b""
        self.messages.write({
            "event": "message",
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "mail_options": envelope.mail_options,
            "data_b64": base64.b64encode(data).decode("ascii"),
            "data": data.decode("utf-8", errors="replace"),
            "peer": list(session.peer) if isinstance(session.peer, tuple) else session.peer,
            "tls": server.is_tls,
            "auth_user": (session.auth_data.login.decode("utf-8", "replace")
                          if isinstance(session.auth_data, LoginPassword) else None),
            "queue_id": queue_id,
            "connection": server.connection_number,
            "received_at": now(),
        })
        server.messages_delivered += 1
        if self.args.data_delay:
            # Recorded, not yet answered: the sender is mid-send (graceful-stop tests).
            await asyncio.sleep(self.args.data_delay)
        if self.args.close_after_each:
            server.close_after_reply = True
        return reply_for(250, queue_id)


def make_server_class(args, connections):
    counter = itertools.count(1)

    class ScriptedSMTP(SMTP):
        """aiosmtpd's SMTP with connection counting and close-after-reply."""

        connection_number = 0
        close_after_reply = False
        messages_delivered = 0

        @property
        def is_tls(self):
            return bool(args.implicit_tls) or self._tls_protocol is not None

        def connection_made(self, transport):
            # STARTTLS calls this a second time for the TLS transport: count TCP connections only.
            if self.connection_number == 0:
                self.connection_number = next(counter)
                peer = transport.get_extra_info("peername")
                connections.write({"event": "connect", "connection": self.connection_number,
                                   "peer": list(peer) if isinstance(peer, tuple) else peer,
                                   "received_at": now()})
            super().connection_made(transport)

        async def push(self, status):
            await super().push(status)
            text = status.decode("ascii", "replace") if isinstance(status, bytes) else status
            if text.startswith("421") or self.close_after_reply:
                self.close_after_reply = False
                self.transport.close()

    return ScriptedSMTP


def write_self_signed(directory):
    """A one-day self-signed certificate for localhost / 127.0.0.1 (also its own CA)."""
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    os.makedirs(directory, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = os.path.join(directory, "cert.pem")
    key_path = os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


def parse_args(argv):
    p = argparse.ArgumentParser(description="Controllable SMTP test server (127.0.0.1 only).")
    p.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (printed first)")
    p.add_argument("--messages", help="JSON-lines file for accepted messages")
    p.add_argument("--connections", help="JSON-lines file for accepted connections")
    p.add_argument("--reply-plan", help="comma-separated codes for successive messages, e.g. 451,250")
    p.add_argument("--plan-stage", choices=["data", "rcpt"], default="data")
    p.add_argument("--always", type=parse_code, help="reply code for every message at the plan stage")
    p.add_argument("--rcpt-rule", action="append", help="PATTERN=CODE for RCPT TO, repeatable")
    p.add_argument("--data-delay", type=float, default=0, help="seconds to wait, after recording a message, before the 250 reply")
    p.add_argument("--close-after-each", action="store_true")
    p.add_argument("--421-after-each", dest="close_421_after_each", action="store_true")
    p.add_argument("--self-signed", metavar="DIR")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--starttls", action="store_true")
    p.add_argument("--require-starttls", action="store_true")
    p.add_argument("--implicit-tls", action="store_true")
    p.add_argument("--auth-user")
    p.add_argument("--auth-password")
    p.add_argument("--auth-required", action="store_true")
    p.add_argument("--auth-allow-plaintext", action="store_true")
    p.add_argument("--hostname", default="smtp-test.localhost", help="name in the greeting and EHLO reply")
    args = p.parse_args(argv)
    if args.self_signed:
        args.tls_cert, args.tls_key = write_self_signed(args.self_signed)
    if (args.starttls or args.require_starttls or args.implicit_tls) and not (args.tls_cert and args.tls_key):
        p.error("TLS needs --tls-cert and --tls-key (or --self-signed DIR)")
    if bool(args.auth_user) != bool(args.auth_password):
        p.error("--auth-user and --auth-password go together")
    return args


async def main(argv):
    args = parse_args(argv)
    # A parent may start us with signals blocked (posix_spawn inherits the calling thread's mask,
    # and a thread of a test runner may block SIGTERM): unblock the ones that stop us.
    blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    if blocked & {signal.SIGTERM, signal.SIGINT}:
        print("unblocked inherited signal mask: {}".format(sorted(blocked)), file=sys.stderr, flush=True)
    behaviour = Behaviour(args)
    messages = JSONLines(args.messages)
    connections = JSONLines(args.connections)
    tls_context = None
    if args.tls_cert:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(args.tls_cert, args.tls_key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login == args.auth_user.encode()
              and auth_data.password == args.auth_password.encode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    server_class = make_server_class(args, connections)
    handler = Handler(args, behaviour, messages)
    smtp_kwargs = dict(
        hostname=args.hostname,
        enable_SMTPUTF8=True,
        # STARTTLS is only offered on a plain connection; with implicit TLS there is none.
        tls_context=tls_context if (args.starttls or args.require_starttls) else None,
        require_starttls=args.require_starttls,
        auth_required=args.auth_required,
        # aiosmtpd only knows STARTTLS as TLS: on an implicit-TLS socket it would never offer AUTH.
        auth_require_tls=not (args.auth_allow_plaintext or args.implicit_tls),
        authenticator=authenticator if args.auth_user else None,
        timeout=60,
    )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: server_class(handler, **smtp_kwargs), host="127.0.0.1", port=args.port,
        ssl=tls_context if args.implicit_tls else None)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1:]))
    except KeyboardInterrupt:
        pass
