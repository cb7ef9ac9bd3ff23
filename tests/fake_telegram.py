"""A fake Telegram Bot API server, and a harness that runs the real bot against it.

api.telegram.org is out of reach in tests, so this aiohttp server on 127.0.0.1 (random port) plays
it: real aiogram talks HTTP to it through ``AiohttpSession(api=TelegramAPIServer.from_base(url))``.
It answers the methods the bot uses with the fields aiogram requires, long-polls ``getUpdates``
from a queue the tests push updates into, records everything the bot sends, and can answer with
Telegram's real errors (400 chat not found, 403 blocked, 429 with ``retry_after``).

Tests act as people: ``harness.say("/run x")`` pushes a message and returns the bot's reply;
``tg.expect(...)`` waits (with a timeout, never a fixed sleep) for the next matching thing the bot sent.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from bot import TaskFlowBot
from orchestrator.engine import Orchestrator
from orchestrator.library import DagLibrary
from orchestrator.scheduler import Scheduler
from orchestrator.settings import Settings

TOKEN = "999000:TEST-fake-token"
BOT_USER = {"id": 999000, "is_bot": True, "first_name": "TaskFlow", "username": "taskflow_test_bot"}
ALICE = {"id": 111, "is_bot": False, "first_name": "Alice", "username": "alice"}  # allowed by id
BOB = {"id": 222, "is_bot": False, "first_name": "Bob", "username": "Bob_B"}  # allowed by @username
EVE = {"id": 333, "is_bot": False, "first_name": "Eve", "username": "eve"}  # not allowed
ALLOWED = "111, @bob_b"
WAIT_S = 10.0
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly the same "
    "as a current content and reply markup of the message"
)
MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
_HTML_TAGS = frozenset({"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "span",
                        "tg-spoiler", "tg-emoji", "blockquote"})  # fmt: skip
_TAG = re.compile(r"<(/?)([a-zA-Z0-9-]+)(?:\s[^<>]*)?>")
_BARE_AMP = re.compile(r"&(?!(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);)")

Json = dict[str, Any]


class ApiError(Exception):
    """An error answer of the Bot API."""

    def __init__(self, code: int, description: str, parameters: Json | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.parameters = code, description, parameters


@dataclass
class Sent:
    """One thing the bot did in a chat: a message, a document, an edit, a callback answer."""

    method: str
    chat_id: int
    message_id: int = 0
    text: str = ""  # the text, or a document's caption, or a callback answer's text
    reply_markup: Json | None = None
    document: bytes | None = None
    filename: str | None = None
    params: Json = field(default_factory=dict)

    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback data) of every inline button."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [(b["text"], b.get("callback_data", "")) for row in rows for b in row]


class FakeTelegram:
    """The fake Bot API server. ``await start()``, point aiogram at ``url``, ``await stop()``."""

    def __init__(self) -> None:
        self.token = TOKEN
        self.url = ""
        self.calls: list[tuple[str, Json]] = []
        self.outbox: list[Sent] = []
        self.commands: list[Json] = []
        self.messages: dict[tuple[int, int], Json] = {}  # what each bot message shows now
        self.files: dict[str, tuple[str, bytes]] = {}
        self.failures: dict[int, ApiError] = {}
        self.rate_limits: dict[int, list[int]] = {}
        self.method_failures: dict[str, list[ApiError]] = {}
        self._taken: set[int] = set()
        self._updates: list[Json] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._new_update = asyncio.Event()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.webhook: Json | None = None  # setWebhook's params while a webhook is set

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> str:
        """Listen on a random port of 127.0.0.1; returns the base URL."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        # Without handler_cancellation, shutdown would wait for a pending long poll to time out.
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        """Stop the server."""
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what the tests do ------------------------------------------------------------------

    def push(self, update: Json) -> Json:
        """Queue an update for the bot's next getUpdates."""
        update["update_id"] = next(self._update_ids)
        self._updates.append(update)
        self._new_update.set()
        return update

    async def post_webhook(self, update: Json, *, secret: str | None = None, **headers: str) -> int:
        """Deliver ``update`` as Telegram does to a webhook: POST to its URL with the secret header; the status."""
        assert self.webhook is not None, "no webhook is set"
        update["update_id"] = next(self._update_ids)
        token = self.webhook.get("secret_token", "") if secret is None else secret
        headers["X-Telegram-Bot-Api-Secret-Token"] = token
        async with aiohttp.ClientSession() as http, http.post(self.webhook["url"], json=update, headers=headers) as r:
            return r.status

    def user_message(self, text: str, user: Json, *, chat: Json | None = None, **extra: Any) -> Json:
        """A message from ``user`` (in their private chat unless ``chat`` is given)."""
        message: Json = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat or {"id": user["id"], "type": "private", "first_name": user["first_name"]},
            "from": user,
            **extra,
        }
        if text:
            message["text"] = text
            if text.startswith("/"):
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return message

    def send_text(self, text: str, user: Json = ALICE, **kwargs: Any) -> Json:
        """The user types ``text``."""
        return self.push({"message": self.user_message(text, user, **kwargs)})

    def send_document(self, filename: str, data: bytes, user: Json = ALICE, *, caption: str | None = None) -> Json:
        """The user sends a file."""
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = (f"documents/{file_id}", data)
        document = {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_name": filename, "file_size": len(data)}
        extra: Json = {"document": document}
        if caption:
            extra["caption"] = caption
        return self.push({"message": self.user_message("", user, **extra)})

    def press(self, sent: Sent, label: str, user: Json = ALICE) -> Json:
        """The user taps the button of ``sent`` whose label contains ``label``."""
        for text, data in self.buttons_of(sent):
            if label in text:
                return self.push({"callback_query": self._callback(sent, data, user)})
        raise AssertionError(f"no button {label!r} under message {sent.message_id}: {self.buttons_of(sent)}")

    def press_outdated(self, sent: Sent, label: str, user: Json = ALICE) -> Json:
        """The user taps a button ``sent`` had when it was sent, on a client that still shows it."""
        for text, data in sent.buttons():
            if label in text:
                return self.push({"callback_query": self._callback(sent, data, user)})
        raise AssertionError(f"no button {label!r} was sent under message {sent.message_id}")

    def buttons_of(self, sent: Sent) -> list[tuple[str, str]]:
        """The buttons a message shows now (edits may have changed them)."""
        current = self.messages.get((sent.chat_id, sent.message_id), {})
        rows = current.get("reply_markup", {}).get("inline_keyboard", [])
        return [(b["text"], b.get("callback_data", "")) for row in rows for b in row]

    def _callback(self, sent: Sent, data: str, user: Json) -> Json:
        return {
            "id": str(next(self._update_ids)),
            "from": user,
            "chat_instance": f"ci-{sent.chat_id}",
            "message": self.messages[(sent.chat_id, sent.message_id)],
            "data": data,
        }

    def block(self, chat_id: int) -> None:
        """The user behind ``chat_id`` blocks the bot."""
        self.failures[chat_id] = ApiError(403, "Forbidden: bot was blocked by the user")

    def lose_chat(self, chat_id: int) -> None:
        """Telegram does not know ``chat_id``."""
        self.failures[chat_id] = ApiError(400, "Bad Request: chat not found")

    def rate_limit(self, chat_id: int, retry_after: int, times: int = 1) -> None:
        """The next ``times`` sends to ``chat_id`` get 429 with ``retry_after``."""
        self.rate_limits.setdefault(chat_id, []).extend([retry_after] * times)

    def fail_next(self, method: str, code: int, description: str, **parameters: Any) -> None:
        """The next call of ``method`` gets this error; code 0 drops the connection without an answer."""
        self.method_failures.setdefault(method, []).append(ApiError(code, description, parameters or None))

    async def expect(
        self,
        chat_id: int | None = None,
        *,
        method: str | tuple[str, ...] = ("sendMessage", "sendDocument"),
        contains: str | None = None,
        where: Callable[[Sent], bool] | None = None,
        wait: float = WAIT_S,
    ) -> Sent:
        """The next thing the bot sent that matches (and was not returned before)."""
        methods = (method,) if isinstance(method, str) else method

        def match() -> Sent | None:
            for n, sent in enumerate(self.outbox):
                ok = n not in self._taken and sent.method in methods
                ok = ok and (chat_id is None or sent.chat_id == chat_id)
                ok = ok and (contains is None or contains in sent.text)
                if ok and (where is None or where(sent)):
                    self._taken.add(n)
                    return sent
            return None

        found: Sent | None = None

        def check() -> bool:
            nonlocal found
            found = match()
            return found is not None

        try:
            async with asyncio.timeout(wait), self._changed:
                await self._changed.wait_for(check)
        except TimeoutError:
            sent = "\n".join(f"  {s.method} → {s.chat_id}: {s.text[:200]!r}" for s in self.outbox)
            raise AssertionError(
                f"the bot sent nothing like that ({methods}, {contains!r}); it sent:\n{sent}"
            ) from None
        assert found is not None
        return found

    def sent_to(self, chat_id: int, method: str = "sendMessage") -> list[Sent]:
        """Everything of one kind the bot sent to a chat, oldest first."""
        return [s for s in self.outbox if s.chat_id == chat_id and s.method == method]

    def called(self, method: str) -> list[Json]:
        """The params of every call of ``method``."""
        return [params for name, params in self.calls if name == method]

    # -- the HTTP side ----------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(ApiError(401, "Unauthorized"))
        method = request.match_info["method"]
        params = await _params(request)
        self.calls.append((method, params))
        handler = getattr(self, f"_do_{method}", None)
        if handler is None:
            return _error(ApiError(404, "Not Found: method not found"))
        try:
            if self.method_failures.get(method):
                raise self.method_failures[method].pop(0)
            result = await handler(params)
        except ApiError as exc:
            if exc.code == 0:  # a network failure: the connection closes before any answer
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)
            return _error(exc)
        finally:
            async with self._changed:
                self._changed.notify_all()
        return web.json_response({"ok": True, "result": result})

    async def _file(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        for file_path, data in self.files.values():
            if file_path == path and request.match_info["token"] == self.token:
                return web.Response(body=data)
        return web.Response(status=404, text="Not Found")

    async def _do_getMe(self, params: Json) -> Json:
        return BOT_USER

    async def _do_deleteWebhook(self, params: Json) -> bool:
        self.webhook = None
        return True

    async def _do_setWebhook(self, params: Json) -> bool:
        self.webhook = params
        return True

    async def _do_setMyCommands(self, params: Json) -> bool:
        self.commands = json.loads(params["commands"])
        return True

    async def _do_getUpdates(self, params: Json) -> list[Json]:
        offset = int(params.get("offset", 0))
        wait = float(params.get("timeout", 0))
        limit = int(params.get("limit", 100))
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            self._new_update.clear()
            self._updates = [u for u in self._updates if u["update_id"] >= offset]  # older ones are confirmed
            left = deadline - asyncio.get_running_loop().time()
            if self._updates or left <= 0:
                return self._updates[:limit]
            try:
                async with asyncio.timeout(left):
                    await self._new_update.wait()
            except TimeoutError:
                return []

    async def _do_sendMessage(self, params: Json) -> Json:
        chat_id = self._check_chat(params)
        _check_text(params, "text", MESSAGE_LIMIT)
        message = self._bot_message(chat_id, text=params["text"], markup=_json(params.get("reply_markup")))
        self._record("sendMessage", message, params, text=params["text"])
        return message

    async def _do_sendDocument(self, params: Json) -> Json:
        chat_id = self._check_chat(params)
        _check_text(params, "caption", CAPTION_LIMIT)
        filename, data = _upload(params, "document")
        caption = params.get("caption", "")
        document = {"file_id": f"sent-{filename}", "file_unique_id": f"us-{filename}", "file_name": filename}
        message = self._bot_message(chat_id, markup=_json(params.get("reply_markup")), document=document)
        if caption:
            message["caption"] = caption
        sent = self._record("sendDocument", message, params, text=caption)
        sent.document, sent.filename = data, filename
        return message

    async def _do_editMessageText(self, params: Json) -> Json:
        chat_id = self._check_chat(params)
        _check_text(params, "text", MESSAGE_LIMIT)
        key = (chat_id, int(params["message_id"]))
        if key not in self.messages:
            raise ApiError(400, "Bad Request: message to edit not found")
        message = dict(self.messages[key])
        markup = _json(params.get("reply_markup"))
        if message.get("text") == params["text"] and message.get("reply_markup") == markup:
            raise ApiError(400, _NOT_MODIFIED)
        message["text"], message["edit_date"] = params["text"], int(time.time())
        message.pop("reply_markup", None)
        if markup:
            message["reply_markup"] = markup
        self.messages[key] = message
        self._record("editMessageText", message, params, text=params["text"])
        return message

    async def _do_answerCallbackQuery(self, params: Json) -> bool:
        self.outbox.append(Sent("answerCallbackQuery", 0, text=params.get("text", ""), params=params))
        return True

    async def _do_getFile(self, params: Json) -> Json:
        file_id = params["file_id"]
        if file_id not in self.files:
            raise ApiError(400, "Bad Request: invalid file_id")
        path, data = self.files[file_id]
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": len(data), "file_path": path}

    # -- helpers ----------------------------------------------------------------------------

    def _check_chat(self, params: Json) -> int:
        chat_id = int(params["chat_id"])
        if self.rate_limits.get(chat_id):
            retry = self.rate_limits[chat_id].pop(0)
            raise ApiError(429, f"Too Many Requests: retry after {retry}", {"retry_after": retry})
        if chat_id in self.failures:
            raise self.failures[chat_id]
        return chat_id

    def _bot_message(self, chat_id: int, *, text: str | None = None, markup: Json | None = None, **extra: Any) -> Json:
        message: Json = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
            "from": BOT_USER,
            **extra,
        }
        if text is not None:
            message["text"] = text
        if markup:
            message["reply_markup"] = markup
        self.messages[(chat_id, message["message_id"])] = message
        return message

    def _record(self, method: str, message: Json, params: Json, *, text: str) -> Sent:
        sent = Sent(
            method,
            message["chat"]["id"],
            message["message_id"],
            text=text,
            reply_markup=message.get("reply_markup"),
            params=params,
        )
        self.outbox.append(sent)
        return sent


async def _params(request: web.Request) -> Json:
    """aiogram sends form data (urlencoded, or multipart with files); JSON bodies are accepted too."""
    if request.content_type == "application/json":
        return dict(await request.json())
    form = await request.post()
    return {key: value for key, value in form.items()}


def _check_text(params: Json, name: str, limit: int) -> None:
    """Refuse what Telegram refuses: too long, or HTML it cannot parse."""
    text = params.get(name, "")
    if len(text) > limit:
        what = "message caption" if name == "caption" else "message"
        raise ApiError(400, f"Bad Request: {what} is too long")
    if params.get("parse_mode") == "HTML" and (problem := html_problem(text)):
        raise ApiError(400, f"Bad Request: can't parse entities: {problem}")


def html_problem(text: str) -> str | None:
    """What Telegram's HTML parser would object to in ``text`` (None if it is fine)."""
    stack: list[str] = []
    position = 0
    for match in _TAG.finditer(text):
        outside = text[position : match.start()]
        position = match.end()
        if "<" in outside or _BARE_AMP.search(outside):
            return f"unescaped '<' or '&' near {outside[:40]!r}"
        closing, name = match.group(1), match.group(2).lower()
        if name not in _HTML_TAGS:
            return f'unsupported start tag "{name}"'
        if not closing:
            stack.append(name)
        elif not stack or stack.pop() != name:
            return f'unexpected end tag "{name}"'
    rest = text[position:]
    if "<" in rest or _BARE_AMP.search(rest):
        return f"unescaped '<' or '&' near {rest[:40]!r}"
    return f'unclosed tag "{stack[-1]}"' if stack else None


def _json(value: Any) -> Json | None:
    return json.loads(value) if isinstance(value, str) and value else None


def _upload(params: Json, name: str) -> tuple[str, bytes]:
    value = params.get(name)
    if isinstance(value, str) and value.startswith("attach://"):
        value = params.get(value.removeprefix("attach://"))
    if isinstance(value, web.FileField):
        return value.filename, value.file.read()
    raise ApiError(400, f"Bad Request: there is no {name} in the request")


def _error(exc: ApiError) -> web.Response:
    body: Json = {"ok": False, "error_code": exc.code, "description": exc.description}
    if exc.parameters:
        body["parameters"] = exc.parameters
    return web.json_response(body, status=exc.code)


class BotHarness:
    """The real ``TaskFlowBot`` (and a ``Scheduler``) over the test's orchestrator, talking to a FakeTelegram."""

    def __init__(
        self,
        settings: Settings,
        orch: Orchestrator,
        library: DagLibrary,
        *,
        allowed: str = ALLOWED,
        clock: Callable[[], float] = time.time,
        timezone: str | None = None,
        edit_interval: float = 0.0,
    ) -> None:
        self.tg = FakeTelegram()
        self.orch = orch
        self.library = library
        self._base_settings = settings
        self._allowed = allowed
        self._clock = clock
        self._timezone = timezone or settings.timezone
        self._edit_interval = edit_interval

    async def __aenter__(self) -> BotHarness:
        await self.tg.start()
        update = {
            "telegram_bot_token": self.tg.token,
            "telegram_api_base": self.tg.url,
            "telegram_allowed_users": self._allowed,
            "timezone": self._timezone,
            "public_url_setting": "http://taskflow.test",
        }
        self.settings = self._base_settings.model_copy(update=update)
        self.scheduler = Scheduler(self.settings, self.orch.store, self.orch, self.library, clock=self._clock)
        self.bot = TaskFlowBot(
            self.settings, self.orch, self.library, self.scheduler, self.orch.store, edit_interval=self._edit_interval
        )
        try:
            await self.bot.start()
            async with asyncio.timeout(WAIT_S):
                await self.bot.ready.wait()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.bot.stop()
        await self.tg.stop()

    def record_waits(self) -> list[float]:
        """The waits the bot's session makes for 429s, recorded instead of made."""
        waits: list[float] = []

        async def sleep(seconds: float) -> None:
            waits.append(seconds)

        self.bot.rate_limits.sleep = sleep
        return waits

    async def say(self, text: str, user: Json = ALICE, **expect: Any) -> Sent:
        """``user`` sends ``text``; returns the bot's next message in their chat."""
        self.tg.send_text(text, user)
        return await self.tg.expect(user["id"], **expect)

    async def tap(self, sent: Sent, label: str, user: Json = ALICE, **expect: Any) -> Sent:
        """``user`` taps a button; returns the bot's next message in the chat."""
        self.tg.press(sent, label, user)
        return await self.tg.expect(sent.chat_id, **expect)
