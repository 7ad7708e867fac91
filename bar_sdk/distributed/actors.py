"""Named, detached Ray actors that hold one object for every worker, and their clients.

A *service* is an ordinary single-process object (a ledger, a token bucket)
living inside one Ray actor. Ray runs an actor's methods one at a time, so the
object's own rules hold across workers exactly as they hold across threads in
one process. The actor is ``lifetime="detached"``: it outlives the driver
that created it, and a later job attaches to it by name and namespace.
It is never restarted (``max_restarts=0``): a restarted actor would come back
with empty counts, which would be a budget silently reset.
"""

from __future__ import annotations

import time
from typing import Any, TypeVar

from bar_sdk.errors import BarError, InvalidInputError

__all__ = ["require_ray", "ServiceClient", "kill_service", "DEFAULT_NAMESPACE"]

#: namespace of the services when none is given (a detached actor is found by name *and* namespace)
DEFAULT_NAMESPACE = "bar_sdk"

INSTALL_HINT = "pip install 'bar-sdk[ray]'"


def require_ray(what: str = "this feature") -> Any:
    """Import and return :mod:`ray`, or raise an ``ImportError`` naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise ImportError(f"{what} runs on Ray, which is not installed; install the extra: {INSTALL_HINT}") from None
    return ray


def _ensure_ray(what: str, address: str | None = None) -> Any:
    ray = require_ray(what)
    if not ray.is_initialized():
        ray.init(address=address, namespace=DEFAULT_NAMESPACE, include_dashboard=False, ignore_reinit_error=True)
    return ray


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"name={name!r}; expected a non-empty string naming the shared service")
    return name


class _Refusal:
    """An error the service raised on purpose, in a form that pickles whatever its ``__init__`` takes."""

    def __init__(self, cls: type[BaseException], args: tuple[Any, ...], attrs: dict[str, Any]) -> None:
        self.cls, self.args, self.attrs = cls, args, attrs

    def exception(self) -> BaseException:
        exc = self.cls.__new__(self.cls)
        exc.args = self.args
        vars(exc).update(self.attrs)
        return exc


class _Host:
    """The actor body: holds one object and calls whitelisted methods on it."""

    def __init__(self, factory: Any, kwargs: dict[str, Any]) -> None:
        self._obj = factory(**kwargs)
        self._kwargs = dict(kwargs)

    def settings(self) -> dict[str, Any]:
        return dict(self._kwargs)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self._obj, method)(*args, **kwargs)
        except BarError as exc:  # a refusal is an answer: sent back as a value, raised again by the client
            return _Refusal(type(exc), exc.args, dict(vars(exc)))

    def get(self, attr: str) -> Any:
        return getattr(self._obj, attr)


_Client = TypeVar("_Client", bound="ServiceClient")


class ServiceClient:
    """Client of a named service actor; pickles as its name, so it can be shipped to workers.

    Subclasses set :attr:`service_class` (built inside the actor from the
    settings given to :meth:`_create`) and call :meth:`_call` for the
    methods they forward; :meth:`_create` refuses to attach to an existing
    service whose settings differ from those asked for.

    Parameters
    ----------
    name : str
        The actor's name.
    namespace : str
        Ray namespace of the actor (``"bar_sdk"`` by default); a detached
        actor is found by name *and* namespace.
    """

    service_class: Any = None
    kind = "service"

    def __init__(self, name: str, namespace: str = DEFAULT_NAMESPACE, *, _handle: Any = None) -> None:
        self.name = _check_name(name)
        self.namespace = namespace
        ray = _ensure_ray(type(self).__name__)
        if _handle is None:
            try:
                _handle = ray.get_actor(self.name, namespace=self.namespace)
            except ValueError:
                raise InvalidInputError(
                    f"name={self.name!r}: no {self.kind} of that name in namespace {self.namespace!r}; expected one "
                    f"made by {type(self).__name__}.create(...) (and the same namespace=)"
                ) from None
        self._handle = _handle
        self._ray = ray

    @classmethod
    def _create(
        cls: type[_Client], name: str, namespace: str, address: str | None, settings: dict[str, Any]
    ) -> _Client:
        ray = _ensure_ray(f"{cls.__name__}.create", address)
        name = _check_name(name)
        actor = ray.remote(_Host).options(
            name=name,
            namespace=namespace,
            lifetime="detached",
            get_if_exists=True,
            max_restarts=0,
            max_task_retries=0,
            num_cpus=0,
        )
        handle = actor.remote(cls.service_class, settings)
        existing = ray.get(handle.settings.remote())
        if existing != settings:
            raise InvalidInputError(
                f"name={name!r} already names a {cls.kind} with {existing}; expected {settings} "
                f"(attach to it with {cls.__name__}({name!r}), or pick another name)"
            )
        return cls(name, namespace, _handle=handle)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._wait(self._handle.call.remote(method, *args, **kwargs))

    def _get(self, attr: str) -> Any:
        return self._wait(self._handle.get.remote(attr))

    def _wait(self, ref: Any) -> Any:
        out = self._ray.get(ref)
        if isinstance(out, _Refusal):  # QueryBudgetExceeded, InvalidInputError: the error itself, not Ray's wrapper
            raise out.exception()
        return out

    def kill(self) -> None:
        """End the service actor (its counts are gone with it, unless it saved them); wait until its name is free."""
        self._ray.kill(self._handle, no_restart=True)
        _wait_name_free(self._ray, self.name, self.namespace)

    def __reduce__(self) -> tuple[type[ServiceClient], tuple[str, str]]:
        return (type(self), (self.name, self.namespace))

    def __deepcopy__(self, memo: dict[int, Any]) -> ServiceClient:
        return self  # copies (sklearn.clone) share the one service

    def __copy__(self) -> ServiceClient:
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, namespace={self.namespace!r})"


def kill_service(name: str, namespace: str = DEFAULT_NAMESPACE) -> bool:
    """End the named service actor if it exists; True when one was ended."""
    ray = _ensure_ray("kill_service")
    try:
        handle = ray.get_actor(_check_name(name), namespace=namespace)
    except ValueError:
        return False
    ray.kill(handle, no_restart=True)
    _wait_name_free(ray, name, namespace)
    return True


def _wait_name_free(ray: Any, name: str, namespace: str, timeout: float = 30.0) -> None:
    # ray.kill returns before the actor is gone; a create() under the same name right after would attach to it.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ray.get_actor(name, namespace=namespace)
        except ValueError:
            return
        time.sleep(0.05)
