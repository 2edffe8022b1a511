"""The nutpie adapter (``hierbayes.methods.nutpie``) fills a class of nutpie's internals: a
nutpie release that changes its fields or the callbacks' signatures must fail with a message
that names what changed, not deep inside the sampler."""

import dataclasses

import numba
import pytest

from hierbayes.methods import nutpie as adapter


def test_the_installed_nutpie_has_the_fields_the_adapter_fills():
    from nutpie.compile_pymc import CompiledPyMCModel

    adapter.check_nutpie()
    fields = {f.name for f in dataclasses.fields(CompiledPyMCModel)}
    assert set(adapter.FILLED) <= fields


def test_a_changed_class_is_refused_naming_the_fields():
    from nutpie.compile_pymc import CompiledPyMCModel

    kept = [(f.name, f.type) for f in dataclasses.fields(CompiledPyMCModel) if f.name not in ("_n_dim", "_coords")]
    changed = dataclasses.make_dataclass("CompiledPyMCModel", kept + [("n_dim_total", int)])
    with pytest.raises(RuntimeError, match=r"fields gone: _n_dim, _coords; new fields without defaults: n_dim_total"):
        adapter.check_nutpie(changed)


def test_the_callbacks_have_the_signatures_nutpie_compiles_for_its_own_models():
    """nutpie's PyMC path builds its callbacks from these two functions: the signatures they
    return are the ones its sampler calls."""
    from nutpie import compile_pymc

    user_data = compile_pymc.make_user_data({}, {})
    inner = numba.njit(lambda x: (0.0, x))
    _, logp = compile_pymc._make_c_logp_func(3, inner, user_data, [], {})
    _, expand = compile_pymc._make_c_expand_func(3, 4, inner, user_data, [], {})
    assert logp == adapter.LOGP_SIGNATURE == adapter.logp_cfunc._sig
    assert expand == adapter.EXPAND_SIGNATURE == adapter.expand_cfunc._sig
