"""Configuration: TOML validated once at start-up into frozen dataclasses.

"What" the meter is (identity, phases, household, tariff calendar) is kept apart from "where"
it talks (P1/P3 endpoints, devices, pins). Every key has a default, so no file at all runs a
complete simulated meter. An unknown key or a bad value raises `ConfigError`, whose message
names the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, TypeVar

from twin.clock import parse_meter_time

log = logging.getLogger(__name__)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the key and what is allowed."""


def _rule(check: Callable[[Any], object], allowed: str) -> dict[str, Any]:
    return {"check": check, "allowed": allowed}


def _between(low: float, high: float) -> dict[str, Any]:
    return _rule(lambda v: low <= v <= high, f"a number from {low:g} to {high:g}")


def _one_of(*choices: Any) -> dict[str, Any]:
    return _rule(lambda v: v in choices, "one of " + ", ".join(repr(c) for c in choices))


def _ascii(max_len: int, min_len: int = 0) -> dict[str, Any]:
    # P1 §5.2/§5.4: identifiers are printable ASCII; '/' and '!' would break telegram framing.
    return _rule(
        lambda v: (
            min_len <= len(v) <= max_len
            and all(32 <= ord(c) < 127 for c in v)
            and not set(v) & {"/", "!"}
        ),
        f"printable ASCII without '/' or '!', {min_len} to {max_len} characters",
    )


def _hhmm(text: str) -> time | None:
    if not re.fullmatch(r"\d{2}:\d{2}", text):
        return None
    try:
        return time.fromisoformat(text)
    except ValueError:
        return None


def tcp_host_port(endpoint: str, default_port: int | None = None) -> tuple[str, int] | None:
    """HOST and PORT of tcp://HOST:PORT (PORT 0..65535, 0 = any free port; IPv6 hosts in
    brackets), PORT defaulting to `default_port` if given; None if it is not one."""
    if not endpoint.startswith("tcp://"):
        return None
    rest = endpoint.removeprefix("tcp://").rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep or "]" in port:  # no port, or that colon was inside an IPv6 address
        if default_port is None:
            return None
        host, port = rest, str(default_port)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:  # an IPv6 address needs its brackets
        return None
    if not host or re.search(r"[\s/?#@\[\]]", host) or not port.isdigit() or int(port) > 65535:
        return None
    return host, int(port)


def host_port(text: str) -> tuple[str, int] | None:
    """HOST:PORT with PORT 1..65535 (IPv6 hosts in brackets); None if it is not one."""
    found = tcp_host_port("tcp://" + text.strip())
    return found if found is not None and found[1] > 0 else None


def _iso_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class MeterConfig:
    """Identity and construction of the meter."""

    # P1 §5.2 header: "/XXX5" + identification; XXX the manufacturer's FLAG id.
    manufacturer: str = field(
        default="TWN", metadata=_rule(lambda v: re.fullmatch(r"[A-Za-z]{3}", v), "three letters")
    )
    identification: str = field(default="DSMR-TWIN-422", metadata=_ascii(16))
    # P1 Table 5-3 0-0:96.1.1: sent as the hex of these ASCII characters, at most 96 hex digits.
    equipment_id: str = field(default="E0099000000000018", metadata=_ascii(48, min_len=1))
    phases: int = field(default=3, metadata=_one_of(1, 3))
    nominal_voltage_v: float = field(default=230.0, metadata=_between(100, 260))
    # Imax per phase: DSMR-M 4.3.38 asks >= 100 A of polyphase, >= 80 A of single-phase meters.
    # At most 120 A: 3 x 120 A x 260 V = 93.6 kW still fits 1-0:1.7.0 F5(3,3) on P1.
    max_current_a: float = field(default=100.0, metadata=_between(5, 120))
    seed: int | None = None

    @property
    def max_power_w(self) -> float:
        """The most power the meter carries (phases x Imax x nominal voltage): a bound on load."""
        return self.phases * self.max_current_a * self.nominal_voltage_v


@dataclass(frozen=True, slots=True)
class ClockConfig:
    speed: float = field(default=1.0, metadata=_between(0.001, 1_000_000))
    # "now", or an ISO 8601 time with offset at which a new meter's clock starts, inside the
    # meter clock's range (TIME_MIN..TIME_MAX in twin/clock.py).
    start: str = field(
        default="now",
        metadata=_rule(
            lambda v: v == "now" or parse_meter_time(v),
            "'now' or an ISO time with offset from 2000-01-01 to 2099-12-31 (Dutch local date)",
        ),
    )
    # A meter keeps its own timeline across restarts; true sets it to `start` (or the host's
    # clock) at every start, logged as a clock set (events 4/5).
    resync: bool = False

    def start_time(self) -> datetime | None:
        return None if self.start == "now" else parse_meter_time(self.start)


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """The household behind the meter."""

    base_w: float = field(default=180.0, metadata=_between(0, 20_000))
    appliances: bool = True
    ev: bool = False
    ev_w: float = field(default=7400.0, metadata=_between(1000, 22_000))
    heat_pump: bool = False
    heat_pump_w: float = field(default=1800.0, metadata=_between(200, 10_000))


@dataclass(frozen=True, slots=True)
class PvConfig:
    enabled: bool = True
    peak_w: float = field(default=3600.0, metadata=_between(0, 50_000))
    # 0 = clear skies, 1 = heavily clouded.
    cloudiness: float = field(default=0.4, metadata=_between(0, 1))


@dataclass(frozen=True, slots=True)
class TariffConfig:
    """Dutch tariff calendar: tariff 2 ("normal") on working days between the shift times.

    Main document use case 12: the head end may move the shift times; P3 writes them later.
    """

    normal_start: str = field(default="07:00", metadata=_rule(_hhmm, "HH:MM"))
    normal_end: str = field(default="23:00", metadata=_rule(_hhmm, "HH:MM"))
    working_days: tuple[str, ...] = field(
        default=WEEKDAYS[:5],
        metadata=_rule(lambda v: set(v) <= set(WEEKDAYS), "a list of " + ", ".join(WEEKDAYS)),
    )
    dutch_holidays: bool = True
    extra_holidays: tuple[str, ...] = field(
        default=(), metadata=_rule(lambda v: all(_iso_date(d) for d in v), "ISO dates")
    )


@dataclass(frozen=True, slots=True)
class QualityConfig:
    # P3 0-0:96.7.20 time threshold for long power failures, 180 s by default (Main §5.8).
    long_failure_threshold_s: int = field(default=180, metadata=_between(1, 86_400))
    # NEN-EN 50160: ±10 % of 230 V.
    sag_threshold_v: float = field(default=207.0, metadata=_between(50, 240))
    swell_threshold_v: float = field(default=253.0, metadata=_between(230, 400))


@dataclass(frozen=True, slots=True)
class GasConfig:
    """The simulated gas meter: a twin on the simulated M-Bus when P2 runs, else a stand-in."""

    enabled: bool = True
    channel: int = field(default=1, metadata=_between(1, 4))
    # P2 §6.4.1: 17 characters; the last 8 digits are the M-Bus identification number (§4.2.2).
    equipment_id: str = field(
        default="G0099000000000019",
        metadata=_rule(
            lambda v: len(v) == 17 and all(32 <= ord(c) < 127 for c in v) and v[-8:].isdigit(),
            "17 printable ASCII characters ending in 8 digits",
        ),
    )
    # EN 13757-3 §5.6 manufacturer (FLAG) code in the M-Bus header.
    manufacturer: str = field(
        default="TWN", metadata=_rule(lambda v: re.fullmatch(r"[A-Z]{3}", v), "three capitals")
    )
    # P2 §6.5 Default key (unwraps new User keys); "" = generated once and kept in the store.
    default_key: str = field(
        default="",
        metadata=_rule(
            lambda v: v == "" or re.fullmatch(r"[0-9A-Fa-f]{32}", v),
            "'' (generate and store one) or 32 hex digits",
        ),
        repr=False,  # a key: out of logs and tracebacks
    )
    start_m3: float = field(default=1234.567, metadata=_between(0, 99_999))
    # A DSMR 4.0 gas meter (VER 40, still reports a valve status block).
    dsmr40: bool = False


@dataclass(frozen=True, slots=True)
class P2Config:
    """The wired M-Bus master (P2)."""

    enabled: bool = True
    # "simulated" (the gas-meter twin on an in-process bus), pty://LINK, or uart:///dev/ttyAMA0.
    bus: str = field(
        default="simulated",
        metadata=_rule(lambda v: v == "simulated" or re.match(r"(pty|uart)://.", v), "URL"),
    )
    # BCM pin that switches M-Bus power on a HAT (packom: 26); -1 = none.
    bus_power_gpio: int = field(default=-1, metadata=_between(-1, 27))
    # Keep 2400 baud timing on a simulated bus.
    realtime: bool = False
    # Drop our own frames heard back on a UART whose level converter echoes them.
    echo: bool = False
    # Seconds after each whole hour at which the devices are read (P2 §4.3; MAIN DSMR-M 4.5.6
    # stores the value at 11 minutes past the hour).
    read_delay_s: int = field(default=300, metadata=_between(0, 660))
    # Installation mode after start-up: address 0 is scanned once a minute (P2 §8.3.1, 1 h).
    install_window_s: int = field(default=3600, metadata=_between(0, 86_400))
    # Key the simulated gas meter (whose Default key the twin knows) at installation.
    auto_key: bool = True


@dataclass(frozen=True, slots=True)
class P1Config:
    # pty://LINK, tcp://HOST:PORT or uart:///dev/ttyAMA0 (hardware/registry.py); "none" sends
    # no telegrams (a fleet's meters, unless a P1 port range is given).
    endpoint: str = field(
        default="pty://p1",
        metadata=_rule(
            lambda v: (
                v == "none"
                or re.fullmatch(r"pty://.+|uart:///.+", v)
                or (v.startswith("tcp://") and tcp_host_port(v))
            ),
            "'none', pty://LINK, tcp://HOST:PORT (PORT 0..65535) or uart:///dev/DEVICE",
        ),
    )

    @property
    def serves(self) -> bool:
        """True when P1 telegrams go somewhere (an endpoint other than "none")."""
        return self.endpoint != "none"

    # "always" (request held high, as most cables do), "simulated" (toggled by ctl) or
    # "gpio:N" (BCM pin N through the request-line opto, RPi.GPIO API).
    request: str = field(
        default="always",
        metadata=_rule(
            lambda v: v in ("always", "simulated") or re.fullmatch(r"gpio:\d{1,2}", v),
            "'always', 'simulated' or 'gpio:N'",
        ),
    )
    # Level at the GPIO pin while the reader raises Request (an opto stage usually inverts).
    request_active_high: bool = False
    interval_s: int = field(default=10, metadata=_between(1, 60))
    # Line speed (P1 §5.1: 115200 baud, 8N1): the UART's speed, the speed a pty reports to
    # tcgetattr, and the pace of the simulated lines.
    baudrate: int = field(default=115200, metadata=_one_of(9600, 19200, 38400, 57600, 115200))
    # Send pty and TCP telegrams at the line speed in real time (about 70 ms for 800 bytes),
    # as a reader sees them on a wire; false hands each telegram over at once.
    pace: bool = True


def _hex_key(length: int) -> dict[str, Any]:
    return _rule(
        lambda v: v == "" or re.fullmatch(f"[0-9A-Fa-f]{{{2 * length}}}", v),
        f"'' (generate and store one) or {2 * length} hex digits",
    )


P3_DEFAULT_PORT = 4059  # P3 §3: "the standardized port number 4059"


@dataclass(frozen=True, slots=True)
class P3Config:
    # tcp://HOST:PORT to listen on; PORT defaults to 4059 (P3 §3, DLMS/COSEM over TCP). Served
    # on loopback by default, so a head-end on this machine finds the meter at once and nothing
    # is exposed to the network; "none" (or "") serves no P3.
    endpoint: str = field(
        default="tcp://127.0.0.1:4059",
        metadata=_rule(
            lambda v: v in ("", "none") or tcp_host_port(v, P3_DEFAULT_PORT),
            "'none' or tcp://HOST[:PORT] (PORT 0..65535)",
        ),
    )
    # Identity and keys (P3 §3.2); empty = generated on first start and kept in the store.
    # Keys stay out of reprs (and so out of logs and tracebacks).
    system_title: str = field(default="", metadata=_hex_key(8))
    guek: str = field(default="", metadata=_hex_key(16), repr=False)
    gak: str = field(default="", metadata=_hex_key(16), repr=False)
    master_key: str = field(default="", metadata=_hex_key(16), repr=False)
    # GPRS operation mode (P3 §8.3): "" follows the configuration object 0-1:94.31.3 (factory
    # always-on; the CS may write it), "always-on" or "triggered" force one.
    gprs_mode: str = field(default="", metadata=_one_of("", "always-on", "triggered"))
    # "I am here" destination HOST:PORT when push setup 0-2:25.9.0 has none (P3 §9.3).
    push_destination: str = field(
        default="",
        metadata=_rule(lambda v: v == "" or host_port(v), "'' or HOST:PORT (PORT 1..65535)"),
    )
    # With an empty sender/caller list (0-0:2.3.0 / 0-0:2.2.0) accept any wake-up (lab meter).
    wakeup_any_sender: bool = True
    # The GPRS/LTE modem (hardware/modem.py): "none", "simulated" (hardware/modem_sim.py on a pty
    # in the state directory, driven through the AT driver) or the AT tty of a real modem.
    modem: str = field(
        default="simulated",
        metadata=_rule(
            lambda v: v in {"none", "simulated"} or re.fullmatch(r"/dev/\S+", v),
            "'none', 'simulated' or a device path such as /dev/ttyUSB2",
        ),
    )
    # PDP context over AT (27.007 +CGDCONT/+CGACT; 3GPP TS 23.003 §9.1: at most 100 octets);
    # "" = the OS dials (pppd / ModemManager), except that the simulated modem uses a lab APN.
    apn: str = field(
        default="",
        metadata=_rule(
            lambda v: len(v) <= 100 and v.isascii() and '"' not in v and v.isprintable(),
            "'' or up to 100 printable ASCII characters without '\"'",
        ),
    )
    # The simulated modem's initial signal strength (+CSQ; 0-1:94.31.4, DSMR-G 4.2.12).
    signal_dbm: int = field(default=-71, metadata=_between(-128, 0))
    # Real seconds a P3 connection may take to complete an association (AARQ and HLS) before
    # it is closed, so a silent client cannot hold the one slot for the inactivity time-out.
    association_timeout_s: float = field(default=10.0, metadata=_between(1, 300))

    @property
    def serves(self) -> bool:
        """True when P3 is served (an endpoint other than "none")."""
        return self.endpoint not in ("", "none")


WEB_DEFAULT_PORT = 8059  # rarely taken (unlike 8080); reads as "the twin's 4059, for people"


def http_host_port(endpoint: str) -> tuple[str, int] | None:
    """HOST and PORT of http://HOST[:PORT] (PORT defaults to WEB_DEFAULT_PORT; 0 = any free
    port; IPv6 hosts in brackets); None if it is not one."""
    if not endpoint.startswith("http://"):
        return None
    return tcp_host_port("tcp://" + endpoint.removeprefix("http://"), WEB_DEFAULT_PORT)


def is_loopback(host: str) -> bool:
    """A host name or address of this machine's loopback interface only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class WebConfig:
    """The live web console (twin/web). Served on loopback by default, where no token is asked;
    on any other address every request needs the token kept in the state directory
    (`dsmr-twin ctl web-token`). "none" serves no console."""

    endpoint: str = field(
        default=f"http://127.0.0.1:{WEB_DEFAULT_PORT}",
        metadata=_rule(
            lambda v: v == "none" or http_host_port(v),
            f"'none' or http://HOST[:PORT] (PORT 0..65535, default {WEB_DEFAULT_PORT})",
        ),
    )
    # Real seconds between pushes of the live views while nothing changed (a change goes out
    # at once): the page's clock and power figures move at this pace.
    refresh_s: float = field(default=1.0, metadata=_between(0.2, 60))

    @property
    def serves(self) -> bool:
        return self.endpoint != "none"


@dataclass(frozen=True, slots=True)
class StoreConfig:
    # Real seconds between register checkpoints (also taken before anything is published).
    checkpoint_interval_s: float = field(default=30.0, metadata=_between(0.1, 3600))
    # Real seconds between online backups into backups/ in the state directory (0 = none); a
    # restore loses what the meter did after the backup it restores.
    backup_interval_s: float = field(
        default=3600.0,
        metadata=_rule(lambda v: v == 0 or 60 <= v <= 604_800, "0 (off) or 60 to 604800 s"),
    )
    backup_keep: int = field(default=24, metadata=_between(1, 1000))  # the newest N are kept


@dataclass(frozen=True, slots=True)
class DisplayConfig:
    """The meter display (DSMR-M 4.3.35/4.3.36) and its scroll button."""

    # "none", "simulated" (PNG frames under the state dir), "simulated:DIR",
    # "ssd1306:BUS:ADDR" or "sh1106:BUS:ADDR" (luma.oled on I2C).
    device: str = field(
        default="simulated",
        metadata=_rule(
            lambda v: (
                v in ("none", "simulated")
                or re.fullmatch(
                    r"simulated:.+|(ssd1306|sh1106):\d{1,2}:(0x[0-9a-fA-F]{1,2}|\d{1,3})", v
                )
            ),
            "'none', 'simulated', 'simulated:DIR', 'ssd1306:BUS:ADDR' or 'sh1106:BUS:ADDR'",
        ),
    )
    # "none", "simulated" (ctl button) or "gpio:N" (BCM pin, push-button to ground).
    button: str = field(
        default="simulated",
        metadata=_rule(
            lambda v: v in ("none", "simulated") or re.fullmatch(r"gpio:\d{1,2}", v),
            "'none', 'simulated' or 'gpio:N'",
        ),
    )
    # P3 Annex B: 5 s per OBIS code in auto scroll; back to auto scroll 30 s after the last
    # button press.
    scroll_s: float = field(default=5.0, metadata=_between(1, 3600))  # meter s per page
    manual_hold_s: float = field(default=30.0, metadata=_between(1, 3600))  # meter s
    refresh_s: float = field(default=5.0, metadata=_between(0.2, 20))  # real s


def _share() -> dict[str, Any]:
    return _between(0, 1)


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """The households of a fleet (`dsmr-twin fleet run`): each meter draws its own from these
    distributions with its own seeded random.Random (twin/fleet/household.py), so no two load
    curves match. A share is the fraction of households that have the thing; a `_min`/`_max`
    pair is a uniform range. A single `dsmr-twin run` ignores this section."""

    single_phase_share: float = field(default=0.3, metadata=_share())
    base_w_min: float = field(default=80.0, metadata=_between(0, 20_000))
    base_w_max: float = field(default=400.0, metadata=_between(0, 20_000))
    pv_share: float = field(default=0.45, metadata=_share())
    pv_peak_w_min: float = field(default=1500.0, metadata=_between(0, 50_000))
    pv_peak_w_max: float = field(default=7000.0, metadata=_between(0, 50_000))
    cloudiness_min: float = field(default=0.1, metadata=_share())
    cloudiness_max: float = field(default=0.8, metadata=_share())
    ev_share: float = field(default=0.15, metadata=_share())
    heat_pump_share: float = field(default=0.2, metadata=_share())
    # Households with a gas meter on P2 (the rest, e.g. all-electric homes, have none).
    gas_share: float = field(default=0.85, metadata=_share())

    def __post_init__(self) -> None:
        for name in ("base_w", "pv_peak_w", "cloudiness"):
            low, high = getattr(self, f"{name}_min"), getattr(self, f"{name}_max")
            if low > high:
                raise ConfigError(
                    f"'fleet.{name}_min' = {low!r} is above 'fleet.{name}_max' = {high!r}"
                )


@dataclass(frozen=True, slots=True)
class Config:
    meter: MeterConfig = MeterConfig()
    clock: ClockConfig = ClockConfig()
    load: LoadConfig = LoadConfig()
    pv: PvConfig = PvConfig()
    tariff: TariffConfig = TariffConfig()
    quality: QualityConfig = QualityConfig()
    gas: GasConfig = GasConfig()
    p1: P1Config = P1Config()
    p2: P2Config = P2Config()
    p3: P3Config = P3Config()
    store: StoreConfig = StoreConfig()
    display: DisplayConfig = DisplayConfig()
    web: WebConfig = WebConfig()
    fleet: FleetConfig = FleetConfig()


def read_toml(path: Path, error: type[ConfigError] = ConfigError) -> dict[str, Any]:
    """A TOML file's table, or `error` saying why there is none (never another exception)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (TOML is UTF-8): {exc.reason}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from exc
    except RecursionError as exc:  # tomllib recurses once per nested array or inline table
        raise error(f"{path}: not valid TOML: nested too deeply") from exc


def load_config(path: Path | None) -> Config:
    """Read and validate a TOML file; None gives the defaults."""
    if path is None:
        return Config()
    config = config_from_mapping(read_toml(path))
    _warn_if_keys_exposed(path, config)
    return config


def _warn_if_keys_exposed(path: Path, config: Config) -> None:
    """Keys in a file that the operators (the service's group) or anyone can read are keys
    they can copy: the file should be the service user's alone (0600)."""
    keys = (config.p3.guek, config.p3.gak, config.p3.master_key, config.gas.default_key)
    mode = path.stat().st_mode & 0o777
    if any(keys) and mode & 0o077:
        log.warning(
            "%s holds keys and is readable by others (mode %04o): chmod 0600 it, owned by the"
            " service user",
            path,
            mode,
        )


def config_from_mapping(table: Mapping[str, Any]) -> Config:
    return _build(Config, table, "")


T = TypeVar("T")


def _build(cls: type[T], table: Mapping[str, Any], path: str) -> T:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(table) - set(known))
    if unknown:
        where = path.rstrip(".") or "top level"
        raise ConfigError(
            f"unknown key '{path}{unknown[0]}' ({where} allows: {', '.join(sorted(known))})"
        )
    values = {}
    for name, value in table.items():
        values[name] = _convert(hints[name], value, known[name].metadata, f"{path}{name}")
    return cls(**values)


def _convert(hint: Any, value: Any, meta: Mapping[str, Any], key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"'{key}' must be a table")
        return _build(typing.cast(type, hint), value, key + ".")
    converted = _coerce(hint, value, key)
    check = meta.get("check")
    if check is not None and not check(converted):  # a falsy check result means "no"
        raise ConfigError(f"'{key}' = {value!r} is not allowed: expected {meta['allowed']}")
    return converted


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"'{key}' must be a list of strings")
        return tuple(value)
    expected = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}[hint]
    # bool is an int in Python; a TOML true is never a valid number here.
    if not isinstance(value, expected) or (hint is not bool and isinstance(value, bool)):
        raise ConfigError(f"'{key}' must be of type {hint.__name__}, got {value!r}")
    return hint(value)


def parse_hhmm(text: str) -> time:
    parsed = _hhmm(text)
    if parsed is None:
        raise ConfigError(f"{text!r} is not a time HH:MM")
    return parsed
