"""Where feats keeps things in Redis: key names, the Lua scripts, and parsing their replies."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._breath import Breathe, still
from ._codec import MAX_RECORD_BYTES
from ._errors import StorageError
from ._stored import Loaded, RawEntry

__all__ = [
    "CURRENT_SCRIPT",
    "DEFAULT_NAMESPACE",
    "EPOCH_SCRIPT",
    "HEAD_SCRIPT",
    "LOAD_SCRIPT",
    "MAX_ENTRY_CHARS",
    "MAX_EPOCH_BYTES",
    "MAX_READ_BYTES",
    "OVERSIZED",
    "OVERSIZED_FIELD",
    "RESEED_SCRIPT",
    "SIZED_READ_SCRIPT",
    "UNREADABLE",
    "WRITE_SCRIPT",
    "Keys",
    "check_replicas",
    "client_socket_timeout",
    "load_args",
    "load_keys",
    "new_epoch",
    "parse_current",
    "parse_head",
    "parse_loaded",
    "parse_reseed",
    "parse_write",
    "parse_xrange",
    "parse_xread",
    "reseed_call",
    "sized_read_args",
    "tail_block_ms",
    "tail_socket_timeout",
    "text",
    "write_call",
    "xread_args",
]

DEFAULT_NAMESPACE = "default"
LOG_MAXLEN = 100_000
HISTORY_MAXLEN = 1_000
EXPOSURES_MAXLEN = 1_000_000

_NAMESPACE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass(frozen=True)
class Keys:
    """Every key of one namespace, under one hash tag so one Lua script (and one Cluster slot)
    covers them all."""

    namespace: str

    def __post_init__(self) -> None:
        if not _NAMESPACE.match(self.namespace):
            raise ValueError(
                f"namespace {self.namespace!r}: use 1-64 letters, digits, '_', '.', ':' or '-'"
            )

    @property
    def prefix(self) -> str:
        return f"feats:{{{self.namespace}}}:"

    @property
    def log(self) -> str:
        """The change log stream: every write, in version order; tailed by every App."""
        return self.prefix + "log"

    @property
    def states(self) -> str:
        """Hash: feature -> its current record."""
        return self.prefix + "states"

    @property
    def versions(self) -> str:
        """Hash: feature -> the version of its current record."""
        return self.prefix + "versions"

    @property
    def epoch(self) -> str:
        """A token set on the first write; a different or missing one means another store."""
        return self.prefix + "epoch"

    @property
    def exposures(self) -> str:
        """Stream of experiment exposure batches."""
        return self.prefix + "exposures"

    @property
    def catalog(self) -> str:
        """Hash: App identity -> its published declarations."""
        return self.prefix + "catalog"

    def history(self, feature: str) -> str:
        """Stream of one feature's records, its entry ids being the versions."""
        return f"{self.prefix}history:{feature}"


# Lua shared by the write scripts: every key must be of its type (or absent) before anything
# is written, so a script never fails half-way through (Redis does not roll back a script).
CHECK_TYPES = """
local function check_types(expected)
  for key, kind in pairs(expected) do
    local found = redis.call('TYPE', key).ok
    if found ~= 'none' and found ~= kind then
      return redis.error_reply('WRONGTYPE feats key ' .. key .. ' is a ' .. found
        .. ', not a ' .. kind .. ': nothing was written')
    end
  end
  return nil
end
"""

UNREADABLE = "!unreadable"
"""What a write expects when the stored version is not a version (a hand edit): it matches
exactly that, atomically, so repairing it cannot overwrite a good write made meanwhile."""

# KEYS: log, states, versions, history, epoch
# ARGV: feature, expected version ("*" = any, "" = must not exist yet, UNREADABLE = not a
#       version), record, epoch candidate, log maxlen, history maxlen
# Returns {1, new version} or {0, current version}; an error, having written nothing, if a
# key has the wrong type.
WRITE_SCRIPT = (
    CHECK_TYPES
    + f"local UNREADABLE_VERSION = '{UNREADABLE}'\n"
    + """
local wrong = check_types({[KEYS[1]] = 'stream', [KEYS[2]] = 'hash', [KEYS[3]] = 'hash',
  [KEYS[4]] = 'stream', [KEYS[5]] = 'string'})
if wrong then return wrong end
local feature, expected = ARGV[1], ARGV[2]
local current = redis.call('HGET', KEYS[3], feature) or ''
local unreadable = current ~= '' and not string.match(current, '^%d+%-%d+$')
if expected ~= '*' and current ~= expected
    and not (expected == UNREADABLE_VERSION and unreadable) then
  return {0, current}
end
if redis.call('EXISTS', KEYS[5]) == 0 then
  redis.call('SET', KEYS[5], ARGV[4])
end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local prev = '0-0'
if #last > 0 then prev = last[1][1] end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], '*',
  'feature', feature, 'record', ARGV[3], 'prev', prev)
redis.call('HSET', KEYS[2], feature, ARGV[3])
redis.call('HSET', KEYS[3], feature, id)
-- The history's own id could be ahead of the log's (a hand edit): never fail here.
local added = redis.pcall('XADD', KEYS[4], 'MAXLEN', '~', ARGV[6], id, 'record', ARGV[3])
if type(added) == 'table' and added.err then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[6], '*', 'record', ARGV[3])
end
return {1, id}
"""
)

# KEYS: log, states, versions, epoch. One atomic read of everything an App needs to start.
# ARGV[1] (optional): the largest record to send; a larger one comes back as
# "oversized:<bytes>" (OVERSIZED), so a huge hand-written value stays in Redis instead of
# reaching every App at every load.
OVERSIZED = "oversized:"
"""What the scripts send instead of a value too large to send, followed by its size."""
MAX_EPOCH_BYTES = 64
"""An epoch is a short token; a longer value in its key is refused, not read."""

# The epoch, or OVERSIZED and its size: an App checks it after every idle BLOCK, and must
# not read megabytes there each time. STRLEN looks at the size without copying the value.
EPOCH_LUA = f"""
local function EPOCH(key)
  local size = redis.call('STRLEN', key)
  if size > {MAX_EPOCH_BYTES} then return '{OVERSIZED}' .. size end
  return redis.call('GET', key)
end
"""

# KEYS: epoch.
EPOCH_SCRIPT = EPOCH_LUA + "return EPOCH(KEYS[1])"
LOAD_SCRIPT = (
    EPOCH_LUA
    + f"""
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local head = '0-0'
if #last > 0 then head = last[1][1] end
local states = redis.call('HGETALL', KEYS[2])
local limit = tonumber(ARGV[1])
-- Each record with its version, in one list: (name, version, record) triples, so the App
-- pairs them without building a dictionary of versions first.
local records = {{}}
for i = 1, #states, 2 do
  local record = states[i + 1]
  if limit and string.len(record) > limit then record = '{OVERSIZED}' .. string.len(record) end
  local version = redis.call('HGET', KEYS[3], states[i])
  if version then
    records[#records + 1] = states[i]
    records[#records + 1] = version
    records[#records + 1] = record
  end
end
return {{head, EPOCH(KEYS[4]), records}}
"""
)


def text(value: Any) -> str:
    """Replies come as bytes or str depending on the client's decode_responses."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value
    raise StorageError(f"unexpected reply from Redis: {value!r}")


def _pairs(flat: Sequence[Any]) -> dict[str, str]:
    return {text(flat[i]): text(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


LOADED_SLICE = 1_024
"""Records paired in one bulk step of parse_loaded, between two breaths."""


def parse_loaded(reply: Any, breathe: Breathe = still) -> Loaded:
    """LOAD_SCRIPT's reply. Thousands of records are paired in bulk steps of LOADED_SLICE
    rather than a Python call each, with a breath between: this runs on the tail's
    thread, which an event loop shares."""
    try:
        head, epoch, records = reply
        pairs: dict[str, tuple[str, str | bytes]] = {}
        step = 3 * LOADED_SLICE
        for start in range(0, len(records), step):
            breathe()
            chunk = records[start : start + step]
            names = [
                name.decode("utf-8", errors="replace") if type(name) is bytes else text(name)
                for name in chunk[0::3]
            ]
            versions = [
                version.decode("utf-8", errors="replace")
                if type(version) is bytes
                else text(version)
                for version in chunk[1::3]
            ]
            pairs.update(zip(names, zip(versions, chunk[2::3], strict=True), strict=True))
    except (TypeError, ValueError, AttributeError) as error:
        raise StorageError(f"unexpected load reply from Redis: {reply!r}"[:300]) from error
    return Loaded(
        records=pairs,
        head=text(head),
        epoch=None if epoch in (None, False) else text(epoch),
    )


def _fields(value: Any) -> dict[str, str | bytes]:
    """Field names as text; values as Redis sent them, for the codec to read strictly."""
    if isinstance(value, dict):
        return {text(k): _value(v) for k, v in value.items()}
    return {text(value[i]): _value(value[i + 1]) for i in range(0, len(value) - 1, 2)}


def _value(value: Any) -> str | bytes:
    if isinstance(value, bytes | str):
        return value
    raise StorageError(f"unexpected reply from Redis: {value!r}"[:300])


def parse_xrange(reply: Any, breathe: Breathe = still) -> list[RawEntry]:
    """Entries of an XRANGE reply: ``[(id, fields), ...]``."""
    entries = []
    for count, (entry_id, fields) in enumerate(reply or []):
        if count and not count % 64:
            breathe()
        entries.append(RawEntry(text(entry_id), _fields(fields or [])))
    return entries


def parse_xread(reply: Any, breathe: Breathe = still) -> list[RawEntry]:
    """Entries of an XREAD reply: a list of ``[stream, entries]`` (RESP2) or a map (RESP3)."""
    if not reply:
        return []
    batches = reply.values() if isinstance(reply, dict) else [stream[1] for stream in reply]
    entries: list[RawEntry] = []
    for batch in batches:
        if batch and isinstance(batch[0], list) and batch[0] and isinstance(batch[0][0], list):
            batch = batch[0]
        entries.extend(parse_xrange(batch, breathe))
    return entries


def new_epoch() -> str:
    return f"{time.time_ns():x}"


# KEYS: log, epoch. The store's epoch and its last log id, in one round trip; cheap enough
# for every idle BLOCK (the last entry itself stays in Redis).
HEAD_SCRIPT = (
    EPOCH_LUA
    + """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local head = '0-0'
if #last > 0 then head = last[1][1] end
return {EPOCH(KEYS[2]), head}
"""
)


def parse_head(reply: Any) -> tuple[str | None, str]:
    """HEAD_SCRIPT's reply: ``(epoch or None, last log id)``."""
    try:
        epoch, head = reply
    except (TypeError, ValueError) as error:
        raise StorageError(f"unexpected head reply from Redis: {reply!r}"[:300]) from error
    return (None if epoch in (None, False) else text(epoch)), text(head)


# KEYS: states, versions. ARGV: feature. The record and its version, read together.
CURRENT_SCRIPT = """
return {redis.call('HGET', KEYS[2], ARGV[1]), redis.call('HGET', KEYS[1], ARGV[1])}
"""


def write_call(
    keys: Keys, feature: str, record: str, expected: str | None
) -> tuple[list[str], list[str]]:
    """KEYS and ARGV of WRITE_SCRIPT."""
    return (
        [keys.log, keys.states, keys.versions, keys.history(feature), keys.epoch],
        [
            feature,
            "*" if expected is None else expected,
            record,
            new_epoch(),
            str(LOG_MAXLEN),
            str(HISTORY_MAXLEN),
        ],
    )


def parse_write(reply: Any) -> tuple[bool, str]:
    ok, version = reply
    return int(ok) == 1, text(version) if version else ""


def load_keys(keys: Keys) -> list[str]:
    return [keys.log, keys.states, keys.versions, keys.epoch]


def load_args() -> list[str]:
    """LOAD_SCRIPT's ARGV: records over MAX_RECORD_BYTES are not sent."""
    return [str(MAX_RECORD_BYTES)]


def parse_current(reply: Any) -> tuple[str, str | bytes] | None:
    """The version and the record as Redis sent it (the codec reads it strictly). A version
    without a record is an unreadable record (a hand edit), which a write can replace."""
    version, raw = reply
    if version in (None, False):
        return None
    return text(version), b"" if raw in (None, False) else _value(raw)


def client_socket_timeout(client: Any) -> float | None:
    """The socket timeout a client (plain, Sentinel-managed or Cluster) reads with, if known."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None)
    if kwargs is None:
        kwargs = getattr(client, "get_connection_kwargs", dict)()
        if isinstance(kwargs, dict) and "socket_timeout" not in kwargs:
            # The sync cluster client gives its nodes a default (5 s) it does not list.
            node = getattr(client, "get_default_node", lambda: None)()
            pool = getattr(getattr(node, "redis_connection", None), "connection_pool", None)
            kwargs = getattr(pool, "connection_kwargs", kwargs)
    timeout = kwargs.get("socket_timeout") if isinstance(kwargs, dict) else None
    return float(timeout) if isinstance(timeout, int | float) else None


def tail_block_ms(socket_timeout: float | None, wanted_ms: int) -> int:
    """A BLOCK that returns before the client's socket timeout would cut it off."""
    if socket_timeout is None:
        return wanted_ms
    timeout_ms = int(socket_timeout * 1000)
    return max(50, min(wanted_ms, timeout_ms - min(1000, timeout_ms // 2)))


def tail_socket_timeout(block_ms: int) -> float:
    """The socket timeout of a tail connection of our own: its BLOCK plus a margin.

    It bounds how long a black-holed connection (no reset, no answer) goes unnoticed.
    """
    block = block_ms / 1000
    return block + min(5.0, max(1.0, block))


# KEYS: log, states, versions, epoch, then the history stream of each item's feature.
# ARGV: expected epoch ("" = must be absent), epoch candidate, log maxlen, history maxlen,
#       then per item: feature, version, record, n, and n (history id, record) pairs.
# Writes back every item the store lacks or holds at an older version, keeping its version
# as the log entry id where the log allows (else a new one), all in one atomic step and only
# if the epoch is still the one the caller saw: of many Apps finding the same empty store,
# exactly one writes. Returns {1, epoch, items written} or {0, current epoch or ""}.
RESEED_SCRIPT = (
    CHECK_TYPES
    + """
local function position(id)
  local ms, seq = string.match(id or '', '^(%d+)-(%d+)$')
  if not ms then return nil end
  return tonumber(ms), tonumber(seq)
end
local function older(a, b)
  local ams, aseq = position(a)
  local bms, bseq = position(b)
  if not ams then return true end
  if not bms then return false end
  return ams < bms or (ams == bms and aseq < bseq)
end
local function add(key, maxlen, id, ...)
  local added = redis.pcall('XADD', key, 'MAXLEN', '~', maxlen, id, ...)
  if type(added) == 'table' and added.err then
    added = redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', ...)
  end
  return added
end
local expected = {[KEYS[1]] = 'stream', [KEYS[2]] = 'hash', [KEYS[3]] = 'hash',
  [KEYS[4]] = 'string'}
for k = 5, #KEYS do expected[KEYS[k]] = 'stream' end
local wrong = check_types(expected)
if wrong then return wrong end
local epoch = redis.call('GET', KEYS[4])
if (ARGV[1] == '' and epoch) or (ARGV[1] ~= '' and epoch ~= ARGV[1]) then
  return {0, epoch or ''}
end
if not epoch then
  epoch = ARGV[2]
  redis.call('SET', KEYS[4], epoch)
end
local written, i, k = 0, 5, 5
while i <= #ARGV do
  local feature, version, record = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local count = tonumber(ARGV[i + 3])
  local history = KEYS[k]
  local current = redis.call('HGET', KEYS[3], feature)
  if (not current) or older(current, version) then
    for h = 0, count - 1 do
      redis.pcall('XADD', history, 'MAXLEN', '~', ARGV[4], ARGV[i + 4 + 2 * h],
        'record', ARGV[i + 5 + 2 * h])
    end
    local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
    local prev = '0-0'
    if #last > 0 then prev = last[1][1] end
    local id = add(KEYS[1], ARGV[3], version, 'feature', feature, 'record', record, 'prev', prev)
    redis.call('HSET', KEYS[2], feature, record)
    redis.call('HSET', KEYS[3], feature, id)
    add(history, ARGV[4], id, 'record', record)
    written = written + 1
  end
  i = i + 4 + 2 * count
  k = k + 1
end
return {1, epoch, written}
"""
)


def reseed_call(
    keys: Keys,
    items: Sequence[tuple[str, str, str]],
    epoch: str | None,
    history: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    breathe: Breathe = still,
) -> tuple[list[str], list[str]]:
    """KEYS and ARGV of RESEED_SCRIPT; ``history`` adds older (id, record) pairs per feature."""
    script_keys = [keys.log, keys.states, keys.versions, keys.epoch]
    args = ["" if epoch is None else epoch, new_epoch(), str(LOG_MAXLEN), str(HISTORY_MAXLEN)]
    for count, (feature, version, record) in enumerate(items):
        if not count % 256:
            breathe()
        older = list((history or {}).get(feature, ()))
        script_keys.append(keys.history(feature))
        args += [feature, version, record, str(len(older))]
        for entry_id, entry_record in older:
            args += [entry_id, entry_record]
    return script_keys, args


def parse_reseed(reply: Any) -> int | None:
    """How many items the store took back, or None when its epoch was not the expected one."""
    try:
        ok = int(reply[0])
        return int(reply[2]) if ok == 1 else None
    except (TypeError, ValueError, IndexError) as error:
        raise StorageError(f"unexpected re-seed reply from Redis: {reply!r}"[:300]) from error


def check_replicas(version: str, acked: Any, wanted: int, timeout_ms: int) -> None:
    """Raise unless WAIT saw ``wanted`` replicas acknowledge the write ``version``."""
    count = int(acked)
    if count < wanted:
        raise StorageError(
            f"written as version {version}, but only {count} of {wanted} replica(s) "
            f"acknowledged it within {timeout_ms} ms: a failover now could lose it"
        )


MAX_ENTRY_CHARS = MAX_RECORD_BYTES + 4096
"""A change-log entry larger than this is skipped unread: its record alone may not exceed
MAX_RECORD_BYTES, and its other fields are a feature name and a version."""
MAX_READ_BYTES = 8 * 1024 * 1024
"""A change-log read whose reply passes this many bytes is cut off unread (its connection
closed) and read again by SIZED_READ_SCRIPT, which leaves oversized entries in Redis: an
entry of 50 MB must not cost every App 50 MB, nor more for parsing it."""
SIZED_READ_COUNT = 100
"""Entries per SIZED_READ_SCRIPT read."""
OVERSIZED_FIELD = "oversized"
"""The field SIZED_READ_SCRIPT gives an entry it left unread: its size in bytes."""

# KEYS: log. ARGV: after, count, limit. Up to ``count`` entries after ``after`` as XRANGE
# gives them; an entry over ``limit`` bytes (names and values) comes back as its size, and
# its prev and feature when they are short, so a gap still shows.
SIZED_READ_SCRIPT = f"""
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))
local limit = tonumber(ARGV[3])
for i = 1, #entries do
  local fields = entries[i][2]
  local size = 0
  for k = 1, #fields do size = size + string.len(fields[k]) end
  if size > limit then
    local kept = {{'{OVERSIZED_FIELD}', tostring(size)}}
    for k = 1, #fields - 1, 2 do
      local name = fields[k]
      if (name == 'prev' or name == 'feature') and string.len(fields[k + 1]) <= 256 then
        kept[#kept + 1] = name
        kept[#kept + 1] = fields[k + 1]
      end
    end
    entries[i][2] = kept
  end
end
return entries
"""


def sized_read_args(after: str) -> list[str]:
    """SIZED_READ_SCRIPT's ARGV: entries over MAX_ENTRY_CHARS are left unread."""
    return [after, str(SIZED_READ_COUNT), str(MAX_ENTRY_CHARS)]


def xread_args(log: str, after: str, block_ms: int, count: int = 1000) -> list[str | int]:
    """XREAD's arguments: at most ``count`` entries after ``after``, blocking ``block_ms``."""
    return ["COUNT", count, "BLOCK", block_ms, "STREAMS", log, after]
