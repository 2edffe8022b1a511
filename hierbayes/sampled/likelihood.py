"""Each family's log-likelihood of one row and its derivatives, in numba (one signature for
every family, as brms's ``log_lik_<family>``): ``row_loglik(family, link, y, n, eta, theta,
c, g_theta)`` returns (log p(y | eta, theta), d/d eta) and adds d/d theta into ``g_theta``.

Up to terms free of parameters (lgamma(y + 1), log choose(n, y)), with mu = g^{-1}(eta):

- Gaussian: -(y - mu)^2 / (2 sigma^2) - log sigma;
- Student-t: c_0 - log sigma - (nu + 1)/2 log(1 + z^2/nu), z = (y - mu)/sigma,
  c_0 = lgamma((nu+1)/2) - lgamma(nu/2) - log(nu pi)/2 (``constants``);
- binomial (Bernoulli: n = 1): y log p + (n - y) log(1 - p), with log p, log(1 - p) and their
  derivatives written stably per link (logit by softplus, probit by log Phi with its
  asymptotic tail, cloglog by expm1);
- Poisson: y log mu - mu;
- negative binomial (mean mu, shape phi): lgamma(y + phi) - lgamma(phi) + phi log phi
  + y log mu - (phi + y) log(phi + mu).

Where the mean leaves its support (an identity or sqrt link giving mu <= 0) the row's log
density is -inf and the caller rejects the point.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["FAMILY_CODES", "LINK_CODES", "row_loglik", "constants", "digamma"]

FAMILY_CODES = {"gaussian": 0, "student_t": 1, "bernoulli": 2, "binomial": 2, "poisson": 3, "negativebinomial": 4}
LINK_CODES = {"identity": 0, "logit": 1, "probit": 2, "cloglog": 3, "log": 4, "sqrt": 5}

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
SQRT2 = math.sqrt(2.0)


@numba.njit(cache=True, error_model="numpy")
def digamma(x):
    """psi(x) for x > 0: the recurrence up to 6, then the asymptotic series."""
    r = 0.0
    while x < 6.0:
        r -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    return r + math.log(x) - 0.5 / x - f * (1 / 12 - f * (1 / 120 - f * (1 / 252 - f * (1 / 240 - f / 132))))


@numba.njit(cache=True, error_model="numpy")
def constants(family, theta, c):
    """Per-evaluation constants of the family at theta, written into c (see the docstring)."""
    if family == 1:
        nu = theta[1]
        c[0] = math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi)
        c[1] = 0.5 * digamma((nu + 1) / 2) - 0.5 * digamma(nu / 2) - 0.5 / nu  # d c_0 / d nu
    elif family == 4:
        phi = theta[0]
        c[0] = math.lgamma(phi)
        c[1] = digamma(phi)
        c[2] = math.log(phi)


@numba.njit(cache=True, error_model="numpy")
def _log_ndtr(x):
    """log Phi(x), with the asymptotic tail below -20 (where erfc underflows)."""
    if x > -20.0:
        return math.log(0.5 * math.erfc(-x / SQRT2))
    x2 = x * x
    return -0.5 * x2 - math.log(-x) - HALF_LOG_2PI + math.log1p(-1.0 / x2 + 3.0 / (x2 * x2))


@numba.njit(cache=True, error_model="numpy")
def _mills(x):
    """phi(x) / Phi(x), the derivative of log Phi."""
    if x > -20.0:
        return math.exp(-0.5 * x * x - HALF_LOG_2PI - _log_ndtr(x))
    x2 = x * x
    return -x / (1.0 - 1.0 / x2 + 3.0 / (x2 * x2))


@numba.njit(cache=True, error_model="numpy")
def _binomial(link, y, n, eta):
    """y log p + (n - y) log(1 - p) and its derivative in eta, p = g^{-1}(eta)."""
    if link == 1:  # logit: y eta - n softplus(eta), one exp and one log1p
        e = math.exp(-abs(eta))
        p = 1.0 / (1.0 + e) if eta >= 0 else e / (1.0 + e)
        return y * eta - n * (max(eta, 0.0) + math.log1p(e)), y - n * p
    if link == 2:  # probit
        lp, l1p, dlp, dl1p = _log_ndtr(eta), _log_ndtr(-eta), _mills(eta), -_mills(-eta)
    else:  # cloglog: 1 - p = exp(-exp(eta))
        u = math.exp(eta)
        lp, l1p, dl1p = math.log(-math.expm1(-u)), -u, -u
        dlp = u / math.expm1(u) if u > 0 else 1.0
    value, d = 0.0, 0.0
    if y > 0:
        value += y * lp
        d += y * dlp
    if n - y > 0:
        value += (n - y) * l1p
        d += (n - y) * dl1p
    return value, d


@numba.njit(cache=True, error_model="numpy")
def _mean(link, eta):
    """(mu, log mu, d mu / d eta) for the count links; mu <= 0 is outside the support."""
    if link == 4:
        mu = math.exp(eta)
        return mu, eta, mu
    if link == 5:
        mu = eta * eta
        return mu, (2.0 * math.log(abs(eta)) if eta != 0 else -np.inf), 2.0 * eta
    return eta, (math.log(eta) if eta > 0 else -np.inf), 1.0


@numba.njit(cache=True, error_model="numpy")
def row_loglik(family, link, y, n, eta, theta, c, g_theta):
    """(log-likelihood of one row, its derivative in eta); d/d theta added to ``g_theta``."""
    if family == 0:
        s = theta[0]
        e = y - eta
        g_theta[0] += e * e / (s * s * s) - 1.0 / s
        return -0.5 * (e / s) ** 2 - math.log(s) - HALF_LOG_2PI, e / (s * s)
    if family == 1:
        s, nu = theta[0], theta[1]
        e = y - eta
        z2 = (e / s) ** 2
        a = nu + z2
        g_theta[0] += -1.0 / s + (nu + 1) * z2 / (s * a)
        g_theta[1] += c[1] - 0.5 * math.log1p(z2 / nu) + 0.5 * (nu + 1) * z2 / (nu * a)
        return c[0] - math.log(s) - 0.5 * (nu + 1) * math.log1p(z2 / nu), (nu + 1) * e / (s * s * a)
    if family == 2:
        return _binomial(link, y, n, eta)
    mu, log_mu, dmu = _mean(link, eta)
    if not mu > 0.0:
        return -np.inf, 0.0
    if family == 3:
        if link == 4:
            return y * eta - mu, y - mu
        return (y * log_mu if y > 0 else 0.0) - mu, (y / mu - 1.0) * dmu
    phi = theta[0]
    log_phi_mu = math.log(phi + mu)
    g_theta[0] += digamma(y + phi) - c[1] + c[2] + 1.0 - log_phi_mu - (phi + y) / (phi + mu)
    value = math.lgamma(y + phi) - c[0] + phi * c[2] - (phi + y) * log_phi_mu + (y * log_mu if y > 0 else 0.0)
    if link == 4:
        return value, y - (phi + y) * mu / (phi + mu)
    return value, (y / mu - (phi + y) / (phi + mu)) * dmu
