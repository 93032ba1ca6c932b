"""The course's one training loop, against closed forms, hand-written recurrences and torch.optim stepped by hand."""
import math

import pytest
import torch

import vae_course as vc

A = torch.tensor([0.5, 2.0, 3.0], dtype=torch.float64)  # curvatures of a separable quadratic
C = torch.tensor([1.0, -2.0, 0.25], dtype=torch.float64)  # its minimiser


def quadratic(w):
    """f(w) = 1/2 sum_i a_i (w_i - c_i)^2, with gradient a * (w - c)."""
    return 0.5 * (A * (w - C) ** 2).sum()


def test_sgd_follows_the_closed_form_iterates_on_a_quadratic():
    # Gradient descent on f: w_t = c + (1 - lr a)^t (w_0 - c), so f(w_t) is known in closed form.
    lr, steps = 0.3, 25
    w0 = torch.tensor([3.0, 1.0, -1.0], dtype=torch.float64)
    w = w0.clone().requires_grad_()
    losses = vc.train(lambda: quadratic(w), [w], vc.TrainConfig(steps=steps, lr=lr, optimizer="sgd"))
    for t, loss in enumerate(losses):
        w_t = C + (1 - lr * A) ** t * (w0 - C)
        assert math.isclose(loss, float(0.5 * (A * (w_t - C) ** 2).sum()), rel_tol=1e-12, abs_tol=1e-15)
    torch.testing.assert_close(w.detach(), C + (1 - lr * A) ** steps * (w0 - C), rtol=1e-12, atol=1e-14)
    assert len(losses) == steps


def test_sgd_momentum_follows_the_heavy_ball_recurrence():
    # torch's SGD with momentum m: v <- m v + g (v_0 = g_0), w <- w - lr v; written out in plain floats.
    lr, m, steps = 0.1, 0.8, 30
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    vc.train(lambda: quadratic(w), [w], vc.TrainConfig(steps=steps, lr=lr, optimizer="sgd", momentum=m))
    a, c = A.tolist(), C.tolist()
    ref, vel = [0.0, 0.0, 0.0], None
    for _ in range(steps):
        g = [ai * (wi - ci) for ai, wi, ci in zip(a, ref, c)]
        vel = g if vel is None else [m * vi + gi for vi, gi in zip(vel, g)]
        ref = [wi - lr * vi for wi, vi in zip(ref, vel)]
    torch.testing.assert_close(w.detach(), torch.tensor(ref, dtype=torch.float64), rtol=1e-12, atol=1e-14)


def test_adam_matches_torch_adam_stepped_by_hand_on_the_same_batches():
    g = torch.Generator().manual_seed(0)
    data = torch.randn(37, 2, generator=g, dtype=torch.float64) * torch.tensor([1.0, 3.0], dtype=torch.float64) + 2
    seen = []

    def loss(w, batch):
        return ((batch - w) ** 2).sum(1).mean()

    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)

    def recording_loss(batch):
        seen.append(batch.clone())
        return loss(w, batch)

    got = vc.train(recording_loss, [w], vc.TrainConfig(steps=20, lr=0.05, batch_size=8),
                   data=data, generator=vc.make_generator(4))
    assert len(seen) == 20
    w_ref = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([w_ref], lr=0.05)
    expected = []
    for batch in seen:
        opt.zero_grad()
        value = loss(w_ref, batch)
        value.backward()
        opt.step()
        expected.append(value.item())
    assert got == pytest.approx(expected, rel=1e-12, abs=0)
    torch.testing.assert_close(w.detach(), w_ref.detach(), rtol=1e-12, atol=1e-14)


def test_train_reaches_the_closed_form_maximum_likelihood():
    x = torch.randn(500, generator=vc.make_generator(1), dtype=torch.float64) * 0.5 - 2
    mu = torch.zeros((), dtype=torch.float64, requires_grad=True)
    logvar = torch.zeros((), dtype=torch.float64, requires_grad=True)
    nll = lambda: 0.5 * (math.log(2 * math.pi) + logvar + (x - mu) ** 2 / logvar.exp()).mean()  # noqa: E731
    vc.train(nll, [mu, logvar], vc.TrainConfig(steps=2000, lr=0.05))
    # Maximum likelihood for a Gaussian: the sample mean and the (biased) sample variance.
    mean = sum(x.tolist()) / len(x)
    var = sum((v - mean) ** 2 for v in x.tolist()) / len(x)
    assert abs(mu.item() - mean) < 1e-5 and abs(logvar.item() - math.log(var)) < 1e-5


def _batches_seen(n, batch_size, steps, generator=None, drop_last=False):
    data = torch.arange(float(n))[:, None]
    seen = []
    w = torch.zeros((), requires_grad=True)

    def loss(batch):
        seen.append([int(v) for v in batch.squeeze(1).tolist()])
        return (w * batch).mean() ** 2

    vc.train(loss, [w], vc.TrainConfig(steps=steps, batch_size=batch_size, drop_last=drop_last),
             data=data, generator=generator)
    return seen


def test_every_row_is_visited_once_per_epoch_in_a_new_random_order():
    seen = _batches_seen(12, 4, 9, vc.make_generator(5))  # three epochs of three batches
    epochs = [sum(seen[i:i + 3], []) for i in (0, 3, 6)]
    for epoch in epochs:
        assert sorted(epoch) == list(range(12))  # each row exactly once
    # Shuffled: not in the order of the data, and a different order in each epoch.
    assert all(epoch != list(range(12)) for epoch in epochs)
    assert epochs[0] != epochs[1] != epochs[2]


def test_the_last_partial_batch_is_kept_unless_drop_last():
    kept = _batches_seen(10, 4, 6, vc.make_generator(0))
    assert [len(b) for b in kept] == [4, 4, 2, 4, 4, 2]
    assert sorted(sum(kept[:3], [])) == list(range(10)) and sorted(sum(kept[3:], [])) == list(range(10))
    dropped = _batches_seen(10, 4, 4, vc.make_generator(0), drop_last=True)
    assert [len(b) for b in dropped] == [4, 4, 4, 4]
    assert len(set(sum(dropped[:2], []))) == 8  # 8 distinct rows per epoch; 2 left out


def test_shuffling_is_reproducible_from_the_generator_and_differs_with_another():
    first = _batches_seen(30, 5, 12, vc.make_generator(7))
    assert _batches_seen(30, 5, 12, vc.make_generator(7)) == first
    assert _batches_seen(30, 5, 12, vc.make_generator(8)) != first
    torch.manual_seed(3)  # without a generator, torch's global generator (seeded by vc.setup())
    global_a = _batches_seen(30, 5, 12)
    torch.manual_seed(3)
    assert _batches_seen(30, 5, 12) == global_a


def test_full_batch_when_batch_size_is_none():
    assert _batches_seen(6, None, 2, vc.make_generator(0)) and all(
        sorted(b) == list(range(6)) for b in _batches_seen(6, None, 2, vc.make_generator(0)))


@pytest.mark.parametrize("kwargs,error,match", [
    ({"steps": 0}, ValueError, "steps must be an integer >= 1, got 0"),
    ({"steps": 2.5}, TypeError, "steps must be an integer, got float 2.5"),
    ({"lr": 0.0}, ValueError, "lr must be > 0, got 0"),
    ({"lr": float("inf")}, ValueError, "lr must be a finite number, got inf"),
    ({"lr": float("nan")}, ValueError, "lr must be a finite number, got nan"),
    ({"optimizer": "rmsprop"}, ValueError, "optimizer must be one of 'adam', 'sgd', got 'rmsprop'"),
    ({"optimizer": "sgd", "momentum": 1.0}, ValueError, r"momentum must be in \[0, 1\), got 1"),
    ({"momentum": 0.9}, ValueError, "momentum applies to optimizer='sgd' only, got momentum=0.9"),
    ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1, got 0"),
    ({"batch_size": True}, TypeError, "batch_size must be an integer, got bool True"),
    ({"batch_size": 4.0}, TypeError, "batch_size must be an integer, got float 4.0"),
    ({"drop_last": 1}, TypeError, "drop_last must be True or False, got int 1"),
])
def test_bad_config_names_the_field(kwargs, error, match):
    with pytest.raises(error, match=match):
        vc.TrainConfig(**kwargs)


def test_bad_calls_give_clear_errors():
    w = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match="params must be a non-empty list of tensors with requires_grad=True"):
        vc.train(lambda: w.sum(), [torch.zeros(3)])
    with pytest.raises(ValueError, match=r"loss_fn must return a 0-d tensor .*got shape \(3,\)"):
        vc.train(lambda: w * 2, [w], vc.TrainConfig(steps=1))
    with pytest.raises(ValueError, match="batch_size must be at most the 2 rows of data, got 5"):
        vc.train(lambda b: w.sum(), [w], vc.TrainConfig(batch_size=5), data=torch.zeros(2, 1))
    with pytest.raises(ValueError, match="batch_size=4 applies only when data is given"):
        vc.train(lambda: w.sum(), [w], vc.TrainConfig(batch_size=4))
    with pytest.raises(ValueError, match="generator shuffles the rows of data and applies only when data is given"):
        vc.train(lambda: w.sum(), [w], vc.TrainConfig(steps=1), generator=vc.make_generator(0))
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None, got int 0"):
        vc.train(lambda b: w.sum(), [w], vc.TrainConfig(steps=1), data=torch.zeros(2, 1), generator=0)
    with pytest.raises(TypeError, match="data must be a torch.Tensor whose rows are examples, got list"):
        vc.train(lambda b: w.sum(), [w], data=[[0.0]])
    with pytest.raises(ValueError, match=r"data must be a non-empty tensor whose rows are examples, got shape \(0, 3\)"):
        vc.train(lambda b: w.sum(), [w], data=torch.zeros(0, 3))
    with pytest.raises(TypeError, match="config must be a TrainConfig or None, got dict"):
        vc.train(lambda: w.sum(), [w], {"steps": 3})
    with pytest.raises(FloatingPointError, match="the loss became nan at step 0"):
        vc.train(lambda: torch.log(w.sum() * 0 - 1), [w], vc.TrainConfig(steps=1))
