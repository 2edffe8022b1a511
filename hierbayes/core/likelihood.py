"""Each family's log-likelihood of one row and its derivatives, in numba (one signature for
every family, as brms's ``log_lik_<family>``): ``loglik_rows(family, link, y, n, eta, theta,
c, g_theta)`` returns sum_i log p(y_i | eta_i, theta), turns eta into d/d eta and adds
d/d theta into ``g_theta``.

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

The ``family`` and ``link`` numbers are the ``kernel`` and ``Link.code`` of the entries in
``hierbayes.families`` (0 Gaussian, 1 Student-t, 2 binomial, 3 Poisson, 4 negative binomial;
links 0 identity, 1 logit, 2 probit, 3 cloglog, 4 log, 5 sqrt): a new family is one entry
there and one branch here.

Where the mean leaves its support (an identity or sqrt link giving mu <= 0) the row's log
density is -inf and the caller rejects the point.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["loglik_rows", "constants", "digamma"]

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
    """y log p + (n - y) log(1 - p) and its derivative in eta, p = g^{-1}(eta), for the
    probit and cloglog links (the logit one is written out in ``loglik_rows``)."""
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
def loglik_rows(family, link, y, trials, eta, theta, c, g_theta):
    """sum_i log p(y_i | eta_i, theta); overwrites ``eta`` with d/d eta_i and adds d/d theta
    into ``g_theta``. One row loop per family, chosen once a call: a family test inside the
    loop kept numba from inlining the row and doubled the cost of a logit row."""
    n = eta.shape[0]
    total = 0.0
    if family == 0:
        s = theta[0]
        ss = 0.0
        for i in range(n):
            e = y[i] - eta[i]
            ss += e * e
            eta[i] = e / (s * s)
        g_theta[0] += ss / (s * s * s) - n / s
        return -0.5 * ss / (s * s) - n * (math.log(s) + HALF_LOG_2PI)
    if family == 1:
        s, nu = theta[0], theta[1]
        g_s = g_nu = 0.0
        for i in range(n):
            e = y[i] - eta[i]
            z2 = (e / s) ** 2
            a = nu + z2
            log_a = math.log(a / nu)  # log1p(z2 / nu) to 1e-16 at a third of the cost
            g_s += (nu + 1) * z2 / (s * a)
            g_nu += 0.5 * (nu + 1) * z2 / (nu * a) - 0.5 * log_a
            total -= 0.5 * (nu + 1) * log_a
            eta[i] = (nu + 1) * e / (s * s * a)
        g_theta[0] += g_s - n / s
        g_theta[1] += g_nu + n * c[1]
        return total + n * (c[0] - math.log(s))
    if family == 2:
        if link == 1:  # logit: y eta - n softplus(eta), one exp and one log (log1p costs 2.5x)
            for i in range(n):
                t = eta[i]
                e = math.exp(-abs(t))
                p = 1.0 / (1.0 + e) if t >= 0 else e / (1.0 + e)
                total += y[i] * t - trials[i] * (max(t, 0.0) + math.log(1.0 + e))
                eta[i] = y[i] - trials[i] * p
            return total
        for i in range(n):
            value, eta[i] = _binomial(link, y[i], trials[i], eta[i])
            total += value
        return total
    if family == 3 and link == 4:
        for i in range(n):
            mu = math.exp(eta[i])
            total += y[i] * eta[i] - mu
            eta[i] = y[i] - mu
        return total
    for i in range(n):
        mu, log_mu, dmu = _mean(link, eta[i])
        if not mu > 0.0:
            return -np.inf
        if family == 3:
            total += (y[i] * log_mu if y[i] > 0 else 0.0) - mu
            eta[i] = (y[i] / mu - 1.0) * dmu
            continue
        phi, yi = theta[0], y[i]
        log_phi_mu = math.log(phi + mu)
        g_theta[0] += digamma(yi + phi) - c[1] + c[2] + 1.0 - log_phi_mu - (phi + yi) / (phi + mu)
        total += math.lgamma(yi + phi) - c[0] + phi * c[2] - (phi + yi) * log_phi_mu + (yi * log_mu if yi > 0 else 0.0)
        eta[i] = yi - (phi + yi) * mu / (phi + mu) if link == 4 else (yi / mu - (phi + yi) / (phi + mu)) * dmu
    return total
