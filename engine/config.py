"""Configuration: one YAML file -> one validated, frozen, typed ``Config``.

Every default lives in the section classes below, with a comment each. Validation happens
once, here, at the edge: unknown keys, wrong types, out-of-range values and inconsistent
dates are reported as one line that names the file, the key path, the bad value and what
is allowed, e.g. ``configs/x.yaml: model.dropout = 1.5 is not in [0, 1)``.

Relative paths in a config (cache_dir, model_store, csv files, output_dir) are taken
relative to the current working directory, as with most command-line tools.

Example:
    >>> cfg = load_config("configs/btc.yaml")
    >>> cfg.data.symbols
    ('BTC/USDT', 'ETH/USDT')
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)

from engine.errors import ConfigError, InvalidKey
from engine.secrets import redact_url, register_url
from models.feature_names import parse_feature
from models.protocol import load_class

SYMBOL_RE = re.compile(r"^[A-Z0-9]+(?:[-_.][A-Z0-9]+)*/[A-Z0-9]+(?::[A-Z0-9]+)?$")
TIMEFRAME_RE = re.compile(r"^[1-9][0-9]*[smhdwMy]$")
METRICS = (
    "total_return", "cagr", "sharpe", "sortino", "max_drawdown", "n_trades",
    "win_rate", "exposure", "fees_paid", "final_equity", "volatility", "calmar",
    "profit_factor", "alpha", "information_ratio",
)


# --- reusable field checks ------------------------------------------------------------

def _interval(lo: float, hi: float, *, hi_open: bool = True):
    """A check that a number lies in [lo, hi) (or [lo, hi] when ``hi_open`` is False)."""

    def check(value: float) -> float:
        if not (lo <= value and (value < hi if hi_open else value <= hi)):
            raise ValueError(f"is not in [{lo:g}, {hi:g}{')' if hi_open else ']'}")
        return value

    return AfterValidator(check)


def _check_symbol(value: str) -> str:
    if not SYMBOL_RE.match(value):
        raise ValueError("is not a ccxt market symbol such as BTC/USDT (upper case, BASE/QUOTE)")
    return value


def _check_timeframe(value: str) -> str:
    if not TIMEFRAME_RE.match(value):
        raise ValueError("is not a timeframe such as 1m, 15m, 1h, 4h, 1d or 1w")
    return value


def _check_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("is not an http(s) base URL such as http://127.0.0.1:8080")
    register_url(value)  # a proxy password is blanked in every message from now on
    return value.rstrip("/")


def _unique(values: tuple) -> tuple:
    seen = [v for i, v in enumerate(values) if v in values[:i]]
    if seen:
        raise ValueError(f"lists {seen[0]} twice")
    return values


# ccxt's credential fields (requiredCredentials), compared without case, "_" or "-":
# ccxt itself accepts api_key for apiKey, and headers such as X-MBX-APIKEY carry keys too.
_SECRET_PARTS = ("apikey", "secret", "password", "passphrase", "privatekey", "walletaddress",
                 "token")
_SECRET_NAMES = {"uid", "login", "twofa"}


def _credential_key(options: dict, loc: tuple = ()) -> tuple | None:
    """The key path of the first credential-like key in (nested) ccxt options, or None."""
    for key, value in options.items():
        name = re.sub(r"[\W_]", "", str(key)).lower()
        if name in _SECRET_NAMES or any(part in name for part in _SECRET_PARTS):
            return loc + (key,)
        if isinstance(value, dict):
            found = _credential_key(value, loc + (key,))
            if found:
                return found
    return None


# Numbers are strict: ``true`` is not 1 and "20" is not 20 (a float field accepts an int).
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Bool = Annotated[bool, Strict()]
Symbol = Annotated[str, AfterValidator(_check_symbol)]
Symbols = Annotated[tuple[Symbol, ...], Field(min_length=1), AfterValidator(_unique)]
Fraction = Annotated[Float, _interval(0, 1)]
SmallRate = Annotated[Float, _interval(0, 0.1)]
PositiveInt = Annotated[Int, Field(gt=0)]
Activation = Literal[
    "tanh", "relu", "sigmoid", "linear", "elu", "selu", "gelu", "softsign", "swish"]


class _Loader(yaml.SafeLoader):
    """YAML without implicit dates: ``2017-13-01`` reaches validation as text and is
    reported with its key, instead of failing inside the YAML parser. A key given twice
    in one mapping (two ``broker:`` blocks) is refused instead of keeping the last."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # ``<<: *defaults`` may be overridden by design
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} appears twice (lines {seen[key]} and "
                        f"{line}); keep one and merge their contents", key_node.start_mark)
                if isinstance(key, (str, int, float, bool)):
                    seen[key] = line
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- sections -------------------------------------------------------------------------

class DataConfig(_Section):
    """Where candles come from and how they are checked."""

    exchange: str = "binance"  # any ccxt exchange id (see ccxt.exchanges)
    symbols: Symbols = ("BTC/USDT", "ETH/USDT")  # markets read together, aligned on time
    timeframe: Annotated[str, AfterValidator(_check_timeframe)] = "1d"  # candle length
    start: dt.date = dt.date(2017, 8, 17)  # first day wanted (UTC)
    end: dt.date | None = None  # last day wanted, inclusive; None = up to the last closed candle
    cache_dir: Path = Path("cache")  # downloaded candles, one Parquet file per market
    model_store: Path | None = None  # fitted fold models, reused by runs; None = cache_dir/models
    csv: dict[Symbol, Path] = {}  # {symbol: CSV path} read instead of the exchange
    api_url: Annotated[str, AfterValidator(_check_url)] | None = None  # base URL for all REST calls
    exchange_options: dict[str, Any] = {}  # extra ccxt constructor options (timeout, options, ...)
    gap_policy: Literal["fill", "refuse"] = "fill"  # missing candles: flat fill or stop
    retries: Annotated[Int, Field(ge=0, le=20)] = 5  # retries of a temporary exchange failure
    retry_backoff_s: Annotated[Float, Field(ge=0, le=60)] = 1.0  # first retry wait, doubles

    @model_validator(mode="after")
    def _check_consistency(self) -> DataConfig:
        secret = _credential_key(self.exchange_options)
        if secret:
            raise InvalidKey(("exchange_options", *secret), "...", "is a credential: API keys "
                             "are read only from the environment variables ENGINE_API_KEY, "
                             "ENGINE_API_SECRET (and ENGINE_API_PASSWORD), never from config "
                             "files")
        import ccxt  # local: importing ccxt costs ~0.3 s, only paid when a config is loaded

        if self.exchange not in ccxt.exchanges:
            hint = difflib.get_close_matches(self.exchange, ccxt.exchanges, n=1)
            raise InvalidKey(("exchange",), self.exchange, "is not a ccxt exchange id"
                            + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        if self.end is not None and self.end < self.start:
            raise InvalidKey(("end",), self.end, f"is before data.start ({self.start})")
        if self.start > dt.datetime.now(dt.timezone.utc).date():
            raise InvalidKey(("start",), self.start, "is in the future")
        for symbol in self.csv:
            if symbol not in self.symbols:
                raise InvalidKey(("csv", symbol), str(self.csv[symbol]),
                                f"names a symbol that is not in data.symbols {list(self.symbols)}")
        return self


class ModelConfig(_Section):
    """The LSTM forecaster. Defaults are CPU-sized; configs/seed_2018.yaml has the tutorial's."""

    window_len: Annotated[Int, Field(ge=2, le=512)] = 7  # bars per input window
    features: Annotated[
        tuple[Literal["open", "high", "low", "close", "volume"], ...],
        Field(min_length=1), AfterValidator(_unique),
    ] = ("close", "volume")  # columns of every symbol fed to the model
    layers: Annotated[Int, Field(ge=1, le=8)] = 2  # stacked LSTM layers
    units: Annotated[Int, Field(ge=1, le=4096)] = 32  # units per LSTM layer
    dropout: Fraction = 0.1  # dropout after each LSTM layer
    activation: Activation = "tanh"  # LSTM activation
    output_activation: Activation = "tanh"  # activation of the output layer (the tutorial's tanh)
    loss: Literal["mse", "mae", "huber"] = "mse"  # training loss
    optimizer: Literal["adam", "adamw", "rmsprop", "sgd"] = "adam"  # training optimizer
    learning_rate: Annotated[Float, Field(gt=0, lt=1)] = 0.001  # optimizer step size
    batch_size: Annotated[Int, Field(ge=1, le=65536)] = 32  # windows per gradient step
    epochs: Annotated[Int, Field(ge=1, le=10000)] = 20  # epochs of the first fit (and cold re-fits)
    seed: Annotated[Int, Field(ge=0, lt=2**31)] = 42  # seeds weights, shuffling and dropout


# --- forecasters -----------------------------------------------------------------------

NEURAL_KINDS = ("lstm", "gru", "transformer")
TARGETS = ("window_ratio", "log_return", "direction")
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,39}$")
RESERVED_NAMES = ("persistence",)  # the naive forecast every forecaster is judged beside


def _check_features(values: tuple) -> tuple:
    for i, name in enumerate(values):
        try:
            parse_feature(name)
        except ValueError as exc:
            raise InvalidKey((i,), name, str(exc)) from None
    return _unique(values)


def _check_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError("is not a forecaster name (a letter, then letters, digits, _ or -; "
                         "at most 40 characters)")
    if value in RESERVED_NAMES:
        raise ValueError("is reserved for the naive forecast; choose another name")
    return value


def _check_class(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", value):
        raise ValueError("is not package.module:ClassName (e.g. my_models.ridge:MyRidge)")
    return value


Features = Annotated[tuple[str, ...], Field(min_length=1), AfterValidator(_check_features)]


class _Forecaster(_Section):
    """What every forecaster kind shares: a name, a target, inputs and seeds."""

    name: Annotated[str, AfterValidator(_check_name)]  # how strategies and reports name it
    target: Literal[TARGETS] | None = None  # None = window_ratio for lstm, else log_return
    features: Features = ("close", "volume")  # per symbol; see README "Forecasters"
    window_len: Annotated[Int, Field(ge=2, le=512)] = 7  # bars per input window
    seeds: Annotated[Int, Field(ge=1, le=50)] = 1  # members trained; the forecast is their mean
    seed: Annotated[Int, Field(ge=0, lt=2**31)] = 42  # seed of the first member

    @property
    def resolved_target(self) -> str:
        """The target, its kind's default filled in."""
        return self.target or ("window_ratio" if self.kind == "lstm" else "log_return")

    @property
    def classifier(self) -> bool:
        """Whether it predicts a probability (the ``direction`` target)."""
        return self.resolved_target == "direction"


class NeuralForecaster(_Forecaster):
    """A Keras network: stacked LSTM or GRU layers, or transformer encoder blocks."""

    kind: Literal[NEURAL_KINDS]
    layers: Annotated[Int, Field(ge=1, le=8)] = 2  # recurrent layers or encoder blocks
    units: Annotated[Int, Field(ge=1, le=4096)] = 32  # units per layer (model width)
    heads: Annotated[Int, Field(ge=1, le=64)] = 2  # transformer: attention heads
    dropout: Fraction = 0.1  # dropout after each layer
    activation: Activation = "tanh"  # recurrent / feed-forward activation
    output_activation: Activation = "tanh"  # output layer (sigmoid for the direction target)
    loss: Literal["mse", "mae", "huber"] = "mse"  # training loss (cross-entropy for direction)
    optimizer: Literal["adam", "adamw", "rmsprop", "sgd"] = "adam"  # training optimizer
    learning_rate: Annotated[Float, Field(gt=0, lt=1)] = 0.001  # optimizer step size
    batch_size: Annotated[Int, Field(ge=1, le=65536)] = 32  # windows per gradient step
    epochs: Annotated[Int, Field(ge=1, le=10000)] = 20  # epochs of the first fit (and cold fits)

    @model_validator(mode="after")
    def _check_kind(self) -> NeuralForecaster:
        if self.kind == "transformer" and self.units % self.heads:
            raise InvalidKey(("units",), self.units, f"must be a multiple of heads ({self.heads})")
        if self.classifier:
            for key in ("loss", "output_activation"):
                if key in self.model_fields_set:
                    raise InvalidKey((key,), getattr(self, key), "cannot be set with target "
                                     "direction (a classifier: sigmoid output, binary "
                                     "cross-entropy); remove it")
        return self


class LinearForecaster(_Forecaster):
    """Ridge regression on the flattened window (scikit-learn)."""

    kind: Literal["linear"]
    alpha: Annotated[Float, Field(ge=0, le=1e6)] = 1.0  # L2 penalty

    @model_validator(mode="after")
    def _regression_only(self) -> LinearForecaster:
        if self.classifier:
            raise InvalidKey(("target",), "direction", "needs a classifier and kind linear is "
                             "regression only; use lightgbm, lstm, gru, transformer or a "
                             "custom class")
        return self


class LightGBMForecaster(_Forecaster):
    """Gradient-boosted trees (LightGBM) on the flattened window, one model per symbol."""

    kind: Literal["lightgbm"]
    n_estimators: Annotated[Int, Field(ge=1, le=100_000)] = 200  # boosting rounds
    learning_rate: Annotated[Float, Field(gt=0, lt=1)] = 0.05  # shrinkage
    num_leaves: Annotated[Int, Field(ge=2, le=4096)] = 15  # leaves per tree
    min_child_samples: Annotated[Int, Field(ge=1, le=100_000)] = 20  # windows per leaf
    subsample: Annotated[Float, Field(gt=0, le=1)] = 1.0  # share of windows per tree
    colsample: Annotated[Float, Field(gt=0, le=1)] = 1.0  # share of inputs per tree


class CustomForecaster(_Forecaster):
    """A class of the user's: ``package.module:Name`` with fit, predict, save and load."""

    kind: Literal["custom"]
    class_: Annotated[str, Field(alias="class"), AfterValidator(_check_class)]  # where it is
    params: dict[str, Any] = {}  # keyword arguments of the class's constructor

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _importable(self) -> CustomForecaster:
        try:
            load_class(self.class_)
        except ValueError as exc:
            raise InvalidKey(("class",), self.class_, str(exc)) from None
        return self


ForecasterConfig = Annotated[
    NeuralForecaster | LinearForecaster | LightGBMForecaster | CustomForecaster,
    Field(discriminator="kind")]


def forecaster_from_model(model: ModelConfig) -> NeuralForecaster:
    """The one forecaster a ``model:`` section means: kind lstm named ``lstm``."""
    return NeuralForecaster(name="lstm", kind="lstm", target="window_ratio",
                            **model.model_dump())


class WalkForwardConfig(_Section):
    """When the forecaster is re-fit during the backtest."""

    train_bars: Annotated[Int, Field(ge=10)] | None = 1000  # bars in the first fit
    train_until: dt.date | None = None  # or: the first fit uses bars up to this date
    retrain_every: PositiveInt = 30  # bars forecast by one fold before the next re-fit
    window: Literal["expanding", "rolling"] = "expanding"  # rolling keeps the first fit's length
    warm_start: Bool = True  # continue from the previous fold's weights
    finetune_epochs: Annotated[Int, Field(ge=1, le=10000)] = 5  # epochs of a warm re-fit

    @model_validator(mode="before")
    @classmethod
    def _one_start(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("train_until") is not None:
            if data.get("train_bars") is not None:
                raise InvalidKey(("train_bars",), data["train_bars"],
                                "cannot be set together with walkforward.train_until: keep one")
            data = {**data, "train_bars": None}
        elif isinstance(data, dict) and "train_bars" in data and data["train_bars"] is None:
            raise InvalidKey(("train_bars",), None, "must be a number of bars unless "
                             "walkforward.train_until is set")
        return data


class StrategySpec(_Section):
    """One strategy to run: its registry name and its parameters."""

    name: str
    params: dict[str, Any] = {}


class BacktestConfig(_Section):
    """What is traded and how results are compared."""

    symbols: Symbols | None = None  # traded symbols; None = every data symbol
    sort_by: Literal[METRICS] = "sharpe"  # comparison-table order (best first)
    log_scale: Bool = False  # equity charts on a log scale
    portfolio: Bool = False  # one account and one cash balance for all traded symbols


class BrokerConfig(_Section):
    """Simulated broker costs, shared by every strategy of a run."""

    # starting cash in the quote currency: finite, and small enough for exact float sums
    cash: Annotated[Float, Field(gt=0, le=1e12)] = 10_000.0
    commission: SmallRate = 0.001  # fee per fill, fraction of the traded value (0.001 = 0.1%)
    slippage: SmallRate = 0.0005  # adverse price move per fill, fraction of the price
    leverage: Annotated[Float, Field(ge=1, le=10)] = 1.0  # largest sum of |target weights|


class PaperConfig(_Section):
    """Paper trading (python -m engine.paper)."""

    strategy: str | None = None  # label or name of the strategy traded; None = the first listed
    fill: Literal["open", "ticker"] = "open"  # at the next candle's open, or the ticker at once
    poll_seconds: Annotated[Float, Field(gt=0, le=3600)] = 30.0  # wait between checks


class RLConfig(_Section):
    """The reinforcement-learning environment (``engine.rl``); rl_ppo's params override it."""

    action_space: Literal["long_flat", "short_flat_long", "continuous"] = "long_flat"  # actions
    use_forecast: bool = False  # observe the walk-forward LSTM forecast (needs a model: section)
    reward: Literal["log_return", "differential_sharpe"] = "log_return"  # per-step reward
    sharpe_eta: Annotated[float, Field(gt=0, lt=1)] = 0.01  # differential Sharpe's EMA rate
    forecaster: str | None = None  # whose forecast is observed; None = the first forecaster


def _default_strategies() -> tuple[StrategySpec, ...]:
    return (StrategySpec(name="lstm_signal"), StrategySpec(name="buy_and_hold"))


class Config(_Section):
    """The whole run configuration. Build it with ``load_config``."""

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()  # one LSTM forecaster named lstm (or: forecasters)
    forecasters: tuple[ForecasterConfig, ...] | None = None  # several, judged together
    walkforward: WalkForwardConfig = WalkForwardConfig()
    strategies: Annotated[tuple[StrategySpec, ...], Field(min_length=1)] = Field(
        default_factory=_default_strategies)  # strategies run on every traded symbol
    backtest: BacktestConfig = BacktestConfig()
    broker: BrokerConfig = BrokerConfig()
    paper: PaperConfig = PaperConfig()
    rl: RLConfig = RLConfig()
    output_dir: Path = Path("runs/default")  # where reports, charts and models go
    source: Path | None = None  # the YAML file this came from (set by load_config)
    source_hash: str | None = None  # sha256 of that file (set by load_config)

    @model_validator(mode="before")
    @classmethod
    def _strategy_shorthand(cls, data: Any) -> Any:
        """Accept ``- name: sma_cross`` with parameters inline, and a bare ``- buy_and_hold``."""
        if isinstance(data, dict) and isinstance(data.get("strategies"), list):
            specs = []
            for item in data["strategies"]:
                if isinstance(item, str):
                    item = {"name": item}
                if isinstance(item, dict) and "params" not in item:
                    item = {"name": item.get("name"),
                            "params": {k: v for k, v in item.items() if k != "name"}}
                specs.append(item)
            data = {**data, "strategies": specs}
        return data

    @model_validator(mode="after")
    def _check_forecasters(self) -> Config:
        if self.forecasters is not None and "model" in self.model_fields_set:
            raise InvalidKey(("model",), ..., "cannot be given together with forecasters: "
                             "(model: is one forecaster of kind lstm named lstm); move its "
                             "settings into a forecasters entry")
        if self.forecasters == ():
            raise InvalidKey(("forecasters",), [], "must list at least one forecaster")
        names = self.forecaster_names
        for i, forecaster in enumerate(self.forecasters or ()):
            if forecaster.name in names[:i]:
                raise InvalidKey(("forecasters", i, "name"), forecaster.name,
                                 "names two forecasters; give each a name of its own")
            if "hour" in forecaster.features and not _intraday(self.data.timeframe):
                where = ("forecasters", i, "features", forecaster.features.index("hour"))
                raise InvalidKey(where, "hour", f"needs an intraday data.timeframe (it is "
                                 f"{self.data.timeframe}); remove it")
        for i, spec in enumerate(self.strategies):
            wanted = spec.params.get("forecaster")
            if wanted not in (None, "") and wanted not in names:
                raise InvalidKey(("strategies", i, "forecaster"), wanted,
                                 f"is not a forecaster of this config ({', '.join(names)})")
        if self.rl.forecaster is not None and self.rl.forecaster not in names:
            raise InvalidKey(("rl", "forecaster"), self.rl.forecaster,
                             f"is not a forecaster of this config ({', '.join(names)})")
        return self

    @property
    def forecaster_configs(self) -> tuple[Any, ...]:
        """Every forecaster: the ``forecasters:`` entries, or the one ``model:`` means."""
        if self.forecasters is not None:
            return self.forecasters
        return (forecaster_from_model(self.model),)

    @property
    def forecaster_names(self) -> list[str]:
        """The forecasters' names, in config order (the first is the default)."""
        return [f.name for f in self.forecaster_configs]

    def forecaster(self, name: str | None = None) -> Any:
        """The forecaster called ``name``; None or "" = the first."""
        if not name:
            return self.forecaster_configs[0]
        return next(f for f in self.forecaster_configs if f.name == name)

    @model_validator(mode="after")
    def _check_symbols(self) -> Config:
        for symbol in self.backtest.symbols or ():
            if symbol not in self.data.symbols:
                raise InvalidKey(("backtest", "symbols"), symbol,
                                f"is not in data.symbols {list(self.data.symbols)}")
        if self.backtest.portfolio and len(self.traded_symbols) < 2:
            raise InvalidKey(("backtest", "portfolio"), True,
                             "needs at least two traded symbols (backtest.symbols); set it to "
                             "false to trade one symbol")
        return self

    @property
    def symbol_groups(self) -> list[tuple[str, ...]]:
        """The symbols of each account: all together in portfolio mode, else one each."""
        if self.backtest.portfolio:
            return [self.traded_symbols]
        return [(s,) for s in self.traded_symbols]

    @property
    def traded_symbols(self) -> tuple[str, ...]:
        """The symbols strategies trade: backtest.symbols, or every data symbol."""
        return self.backtest.symbols or self.data.symbols

    def to_dict(self) -> dict[str, Any]:
        """The config as plain YAML/JSON-ready data (paths and dates as strings).

        This is what every written copy of the config holds (config.yaml, report.json,
        report.html, the paper state), so URL credentials are blanked here.
        """
        data = self.model_dump(mode="json", by_alias=True, exclude={"source", "source_hash"})
        data["data"]["api_url"] = redact_url(data["data"]["api_url"])
        # Keys newer than a config's format are left out while unset, so the dump of an
        # older config (and the paper state fingerprint made from it) stays as it was.
        if data["forecasters"] is None:
            del data["forecasters"]
        else:
            del data["model"]  # the forecasters replace it
        if data["rl"]["forecaster"] is None:
            del data["rl"]["forecaster"]
        return data


_FORECASTER_CLASSES = {**{k: NeuralForecaster for k in NEURAL_KINDS}, "linear": LinearForecaster,
                       "lightgbm": LightGBMForecaster, "custom": CustomForecaster}


def forecaster_classes() -> tuple[type, ...]:
    """The section classes of the forecaster kinds."""
    return tuple(dict.fromkeys(_FORECASTER_CLASSES.values()))


def _intraday(timeframe: str) -> bool:
    return timeframe[-1] in "smh"


# --- loading and error messages -------------------------------------------------------

def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read, validate and freeze a YAML config.

    Args:
        path: The YAML file.
        overrides: Top-level keys that replace the file's (e.g. ``{"output_dir": "x"}``).
            Defaults to None.

    Returns:
        The frozen ``Config``; ``output_dir`` defaults to ``runs/<file stem>``.

    Raises:
        ConfigError: One line naming the file, the key path, the value and what is allowed.
    """
    path = Path(path)
    try:
        raw_bytes = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    try:
        raw = yaml.load(raw_bytes, Loader=_Loader) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections "
                          f"(data:, model:, ...), got {type(raw).__name__}")
    raw = {"output_dir": f"runs/{path.stem}", **raw, **(overrides or {})}
    raw["source"], raw["source_hash"] = str(path), hashlib.sha256(raw_bytes).hexdigest()
    return validate_config(raw, label=str(path))


def validate_config(raw: dict[str, Any], label: str = "config") -> Config:
    """Validate an already-parsed config mapping (see ``load_config``)."""
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{label}: {_describe(exc)}") from None
    from strategies.registry import check_specs, check_symbols  # they import backtrader

    try:
        check_specs(config.strategies)
        for symbols in config.symbol_groups:
            check_symbols(config.strategies, symbols, config.broker.leverage)
    except InvalidKey as exc:
        where = ("strategies",) + exc.loc
        raise ConfigError(f"{label}: {_line(where, exc.value, exc.problem)}") from None
    return config


def _describe(exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    loc, value, kind = tuple(first["loc"]), first.get("input"), first["type"]
    loc, forecaster_kind = _strip_kind(loc)
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, InvalidKey):
        text = _line(loc + cause.loc, cause.value, cause.problem)
    elif kind == "extra_forbidden" and forecaster_kind:
        text = f"{_path(loc)} is not a setting of kind {forecaster_kind}" \
            + _kind_settings(forecaster_kind, str(loc[-1]))
    elif kind == "extra_forbidden":
        text = f"unknown key {_path(loc)}" + _did_you_mean(loc)
    elif kind == "union_tag_invalid":
        kinds = [*NEURAL_KINDS, "linear", "lightgbm", "custom"]
        hint = difflib.get_close_matches(str((first.get("ctx") or {}).get("tag")), kinds, n=1)
        text = _line(loc + ("kind",), (first.get("ctx") or {}).get("tag"),
                     "is not a forecaster kind (" + (f"did you mean {hint[0]!r}? " if hint
                                                      else "") + f"known: {', '.join(kinds)})")
    elif kind in ("missing", "union_tag_not_found"):
        loc = loc + ("kind",) if kind == "union_tag_not_found" else loc
        text = f"missing required key {_path(loc)}"
    else:
        text = _line(loc, value, _problem(first))
    more = len(errors) - 1
    return text + (f" (and {more} more error{'s' * (more > 1)})" if more else "")


def _strip_kind(loc: tuple) -> tuple[tuple, str | None]:
    """Drop the kind pydantic puts in a forecaster entry's error location
    (``forecasters.0.lightgbm.units`` -> ``forecasters.0.units``) and return it."""
    if len(loc) > 2 and loc[0] == "forecasters" and isinstance(loc[1], int) and \
            loc[2] in _FORECASTER_CLASSES:
        return loc[:2] + loc[3:], str(loc[2])
    return loc, None


def _kind_settings(kind: str, wrong: str) -> str:
    names = [n for n in _FORECASTER_CLASSES[kind].model_fields if n != "kind"]
    names = ["class" if n == "class_" else n for n in names]
    hint = difflib.get_close_matches(wrong, names, n=1)
    return (f" (did you mean {hint[0]!r}?)" if hint else "") + f"; its settings: {', '.join(names)}"


def _problem(error: dict) -> str:
    ctx = error.get("ctx") or {}
    for key, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if key in ctx and error["type"].startswith(("greater", "less")):
            return f"must be {op} {ctx[key]}"
    if error["type"] == "literal_error":
        return f"is not one of {ctx.get('expected', '')}"
    if error["type"] == "value_error":
        return str(ctx.get("error", error["msg"]))
    if error["type"] == "too_short":
        return "must not be empty"
    message = error["msg"] or "is invalid"
    return message.replace("Input should be", "should be", 1)


def _line(loc: Sequence, value: Any, problem: str) -> str:
    if value is ...:  # a rule about the key itself, not about one value
        return f"{_path(loc)} {problem}"
    return f"{_path(loc)} = {_show(value)} {problem}"


def _path(loc: Sequence) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif "/" in str(part) or "." in str(part):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _show(value: Any) -> str:
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, (dt.date, Path)):
        text = str(value)
    elif value is None:
        text = "null"
    else:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _did_you_mean(loc: Sequence) -> str:
    """Suggest the closest known key for an unknown one (cheap: one model's field names)."""
    model: Any = Config
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return ""
        model = field.annotation
    names = list(getattr(model, "model_fields", {}))
    hint = difflib.get_close_matches(str(loc[-1]), names, n=1)
    return f" (did you mean {_path(tuple(loc[:-1]) + (hint[0],))!r}?)" if hint else (
        f"; known keys: {', '.join(names)}" if names else "")
