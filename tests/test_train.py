"""The course's one training loop."""
import pytest
import torch

import vae_course as vc


def test_train_is_the_plain_loop_step_for_step():
    x = torch.randn(200, generator=vc.make_generator(0)) * 2 + 1
    loss = lambda: -vc.gaussian_log_prob(x[:, None], mu, logvar).mean()  # noqa: E731
    mu, logvar = torch.zeros((), requires_grad=True), torch.zeros((), requires_grad=True)
    got = vc.train(loss, [mu, logvar], vc.TrainConfig(steps=40, lr=0.3, optimizer="sgd"))
    got_params = (mu.item(), logvar.item())
    mu, logvar = torch.zeros((), requires_grad=True), torch.zeros((), requires_grad=True)
    opt = torch.optim.SGD([mu, logvar], lr=0.3)
    expected = []
    for _ in range(40):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
        expected.append(value.item())
    assert got == expected and got_params == (mu.item(), logvar.item())


def test_train_reaches_the_closed_form_maximum_likelihood():
    x = torch.randn(500, generator=vc.make_generator(1), dtype=torch.float64) * 0.5 - 2
    mu = torch.zeros((), dtype=torch.float64, requires_grad=True)
    logvar = torch.zeros((), dtype=torch.float64, requires_grad=True)
    vc.train(lambda: -vc.gaussian_log_prob(x[:, None], mu, logvar).mean(), [mu, logvar],
             vc.TrainConfig(steps=2000, lr=0.05))
    fitted = vc.fit_gaussian(x)
    mu_hat, logvar_hat = fitted.mu, fitted.logvar
    assert abs(mu.item() - float(mu_hat)) < 1e-5 and abs(logvar.item() - float(logvar_hat)) < 1e-5


def test_minibatches_are_reproducible_and_cover_the_data():
    data = torch.arange(12.0)[:, None]
    seen = []
    w = torch.zeros((), requires_grad=True)

    def loss(batch):
        seen.append(batch.squeeze(1).tolist())
        return (w * batch).mean() ** 2

    vc.train(loss, [w], vc.TrainConfig(steps=3, batch_size=4, seed=5), data=data)
    first = list(seen)
    assert sorted(v for b in first for v in b) == list(range(12))  # one epoch: every row once
    seen.clear()
    vc.train(loss, [w], vc.TrainConfig(steps=3, batch_size=4, seed=5), data=data)
    assert seen == first


@pytest.mark.parametrize("kwargs,match", [
    ({"steps": 0}, "steps must be a positive integer"),
    ({"lr": 0.0}, "lr must be positive"),
    ({"optimizer": "rmsprop"}, "optimizer must be 'adam' or 'sgd'"),
    ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
    ({"batch_size": 0}, "batch_size must be a positive integer or None"),
])
def test_bad_config_names_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        vc.TrainConfig(**kwargs)


def test_bad_calls_give_clear_errors():
    w = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match="requires_grad"):
        vc.train(lambda: w.sum(), [torch.zeros(3)])
    with pytest.raises(ValueError, match="0-d tensor"):
        vc.train(lambda: w * 2, [w], vc.TrainConfig(steps=1))
    with pytest.raises(ValueError, match="exceeds the 2 rows"):
        vc.train(lambda b: w.sum(), [w], vc.TrainConfig(batch_size=5), data=torch.zeros(2, 1))
    with pytest.raises(FloatingPointError, match="step 0"):
        vc.train(lambda: torch.log(w.sum() * 0 - 1), [w], vc.TrainConfig(steps=1))
