//! Classic-control environments behind one [`Environment`] trait.
//!
//! The dynamics follow Gymnasium's reference implementations step for step (same constants,
//! same integrators, float64 state, float32 observations), so returns are comparable with
//! published results. Each reset takes a seed: the same seed always gives the same episode.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::NnError;

/// The environments [`make_env`] knows, by their Gymnasium names.
pub const ENVIRONMENT_NAMES: [&str; 3] = ["CartPole-v1", "MountainCar-v0", "Acrobot-v1"];

/// What one step of an environment returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub observation: Vec<f32>,
    pub reward: f32,
    /// The episode reached a terminal state (no future reward to bootstrap).
    pub terminated: bool,
    /// The episode was cut off by its step limit (the state itself is not terminal).
    pub truncated: bool,
}

/// An episodic environment with a vector observation and a discrete action space.
///
/// Implement it to train on your own environment. `step` is only called between `reset`s
/// with an action below `actions()`; it returns `NnError::Invalid` for anything else rather
/// than panicking or silently clamping.
pub trait Environment: Send {
    fn name(&self) -> &str;
    fn observation_size(&self) -> usize;
    fn actions(&self) -> usize;
    /// Steps after which an episode is truncated.
    fn max_episode_steps(&self) -> usize;
    /// Starts a new episode, its initial state drawn from `seed`; returns the first observation.
    fn reset(&mut self, seed: u64) -> Vec<f32>;
    fn step(&mut self, action: usize) -> Result<Step, NnError>;
}

/// Builds a named environment; `max_episode_steps` may shorten (not lengthen) its step limit.
pub fn make_env(
    name: &str,
    max_episode_steps: Option<usize>,
) -> Result<Box<dyn Environment>, NnError> {
    let limit = |own: usize| match max_episode_steps {
        None => Ok(TimeLimit::new(own)),
        Some(steps) if (1..=own).contains(&steps) => Ok(TimeLimit::new(steps)),
        Some(steps) => Err(NnError::invalid(format!(
            "max_episode_steps must be between 1 and {own} for {name} (its own limit), not {steps}"
        ))),
    };
    Ok(match name {
        "CartPole-v1" => Box::new(CartPole {
            state: [0.0; 4],
            limit: limit(500)?,
        }),
        "MountainCar-v0" => Box::new(MountainCar {
            state: [0.0; 2],
            limit: limit(200)?,
        }),
        "Acrobot-v1" => Box::new(Acrobot {
            state: [0.0; 4],
            limit: limit(500)?,
        }),
        _ => {
            return Err(NnError::invalid(format!(
                "unknown environment {name:?}; the known environments are {}",
                ENVIRONMENT_NAMES.join(", ")
            )));
        }
    })
}

/// Counts the steps of an episode and says when it is truncated (Gymnasium's `TimeLimit`).
#[derive(Debug, Clone)]
struct TimeLimit {
    max: usize,
    elapsed: usize,
}

impl TimeLimit {
    fn new(max: usize) -> Self {
        Self { max, elapsed: 0 }
    }

    /// Counts a step; true once the limit is reached.
    fn tick(&mut self) -> bool {
        self.elapsed += 1;
        self.elapsed >= self.max
    }
}

fn check_action(name: &str, action: usize, actions: usize) -> Result<(), NnError> {
    if action < actions {
        Ok(())
    } else {
        Err(NnError::invalid(format!(
            "action {action} is out of range for {name}, which has {actions} actions (0 to {})",
            actions - 1
        )))
    }
}

fn uniform<const N: usize>(seed: u64, low: f64, high: f64) -> [f64; N] {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    std::array::from_fn(|_| rng.random_range(low..high))
}

/// CartPole-v1: push a cart left (0) or right (1) to keep a pole upright; +1 per step.
#[derive(Debug, Clone)]
struct CartPole {
    /// x, x_dot, theta, theta_dot
    state: [f64; 4],
    limit: TimeLimit,
}

impl CartPole {
    const GRAVITY: f64 = 9.8;
    const MASS_CART: f64 = 1.0;
    const MASS_POLE: f64 = 0.1;
    const TOTAL_MASS: f64 = Self::MASS_CART + Self::MASS_POLE;
    /// Half the pole's length.
    const LENGTH: f64 = 0.5;
    const POLE_MASS_LENGTH: f64 = Self::MASS_POLE * Self::LENGTH;
    const FORCE_MAG: f64 = 10.0;
    const TAU: f64 = 0.02;
    const THETA_THRESHOLD: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;
    const X_THRESHOLD: f64 = 2.4;

    fn observation(&self) -> Vec<f32> {
        self.state.iter().map(|&v| v as f32).collect()
    }
}

impl Environment for CartPole {
    fn name(&self) -> &str {
        "CartPole-v1"
    }
    fn observation_size(&self) -> usize {
        4
    }
    fn actions(&self) -> usize {
        2
    }
    fn max_episode_steps(&self) -> usize {
        self.limit.max
    }

    fn reset(&mut self, seed: u64) -> Vec<f32> {
        self.state = uniform(seed, -0.05, 0.05);
        self.limit.elapsed = 0;
        self.observation()
    }

    fn step(&mut self, action: usize) -> Result<Step, NnError> {
        check_action(self.name(), action, 2)?;
        let [x, x_dot, theta, theta_dot] = self.state;
        let force = if action == 1 {
            Self::FORCE_MAG
        } else {
            -Self::FORCE_MAG
        };
        let (sin, cos) = theta.sin_cos();
        let temp =
            (force + Self::POLE_MASS_LENGTH * theta_dot * theta_dot * sin) / Self::TOTAL_MASS;
        let theta_acc = (Self::GRAVITY * sin - cos * temp)
            / (Self::LENGTH * (4.0 / 3.0 - Self::MASS_POLE * cos * cos / Self::TOTAL_MASS));
        let x_acc = temp - Self::POLE_MASS_LENGTH * theta_acc * cos / Self::TOTAL_MASS;
        self.state = [
            x + Self::TAU * x_dot,
            x_dot + Self::TAU * x_acc,
            theta + Self::TAU * theta_dot,
            theta_dot + Self::TAU * theta_acc,
        ];
        let [x, _, theta, _] = self.state;
        let terminated = !(-Self::X_THRESHOLD..=Self::X_THRESHOLD).contains(&x)
            || !(-Self::THETA_THRESHOLD..=Self::THETA_THRESHOLD).contains(&theta);
        Ok(Step {
            observation: self.observation(),
            reward: 1.0,
            terminated,
            truncated: self.limit.tick(),
        })
    }
}

/// MountainCar-v0: push an underpowered car left (0), not at all (1) or right (2) up to the
/// flag at 0.5; -1 per step.
#[derive(Debug, Clone)]
struct MountainCar {
    /// position, velocity
    state: [f64; 2],
    limit: TimeLimit,
}

impl MountainCar {
    const MIN_POSITION: f64 = -1.2;
    const MAX_POSITION: f64 = 0.6;
    const MAX_SPEED: f64 = 0.07;
    const GOAL_POSITION: f64 = 0.5;
    const FORCE: f64 = 0.001;
    const GRAVITY: f64 = 0.0025;

    fn observation(&self) -> Vec<f32> {
        self.state.iter().map(|&v| v as f32).collect()
    }
}

impl Environment for MountainCar {
    fn name(&self) -> &str {
        "MountainCar-v0"
    }
    fn observation_size(&self) -> usize {
        2
    }
    fn actions(&self) -> usize {
        3
    }
    fn max_episode_steps(&self) -> usize {
        self.limit.max
    }

    fn reset(&mut self, seed: u64) -> Vec<f32> {
        let [position] = uniform(seed, -0.6, -0.4);
        self.state = [position, 0.0];
        self.limit.elapsed = 0;
        self.observation()
    }

    fn step(&mut self, action: usize) -> Result<Step, NnError> {
        check_action(self.name(), action, 3)?;
        let [mut position, mut velocity] = self.state;
        velocity += (action as f64 - 1.0) * Self::FORCE - (3.0 * position).cos() * Self::GRAVITY;
        velocity = velocity.clamp(-Self::MAX_SPEED, Self::MAX_SPEED);
        position = (position + velocity).clamp(Self::MIN_POSITION, Self::MAX_POSITION);
        if position == Self::MIN_POSITION && velocity < 0.0 {
            velocity = 0.0;
        }
        self.state = [position, velocity];
        let terminated = position >= Self::GOAL_POSITION && velocity >= 0.0;
        Ok(Step {
            observation: self.observation(),
            reward: -1.0,
            terminated,
            truncated: self.limit.tick(),
        })
    }
}

/// Acrobot-v1: swing a two-link pendulum, torquing its middle joint by -1 (0), 0 (1) or +1 (2),
/// until its tip rises one link length above the pivot; -1 per step, 0 on reaching the goal.
#[derive(Debug, Clone)]
struct Acrobot {
    /// theta1, theta2, dtheta1, dtheta2
    state: [f64; 4],
    limit: TimeLimit,
}

impl Acrobot {
    const DT: f64 = 0.2;
    const LINK_LENGTH_1: f64 = 1.0;
    const LINK_MASS_1: f64 = 1.0;
    const LINK_MASS_2: f64 = 1.0;
    const LINK_COM_POS_1: f64 = 0.5;
    const LINK_COM_POS_2: f64 = 0.5;
    const LINK_MOI: f64 = 1.0;
    const MAX_VEL_1: f64 = 4.0 * std::f64::consts::PI;
    const MAX_VEL_2: f64 = 9.0 * std::f64::consts::PI;
    const TORQUES: [f64; 3] = [-1.0, 0.0, 1.0];

    fn observation(&self) -> Vec<f32> {
        let [t1, t2, d1, d2] = self.state;
        [t1.cos(), t1.sin(), t2.cos(), t2.sin(), d1, d2]
            .iter()
            .map(|&v| v as f32)
            .collect()
    }

    /// Time derivative of the state under `torque` ("book" equations of Sutton & Barto).
    fn derivatives(s: [f64; 4], torque: f64) -> [f64; 4] {
        let (m1, m2) = (Self::LINK_MASS_1, Self::LINK_MASS_2);
        let (l1, lc1, lc2) = (
            Self::LINK_LENGTH_1,
            Self::LINK_COM_POS_1,
            Self::LINK_COM_POS_2,
        );
        let (i1, i2) = (Self::LINK_MOI, Self::LINK_MOI);
        let g = 9.8;
        let [theta1, theta2, dtheta1, dtheta2] = s;
        let half_pi = std::f64::consts::FRAC_PI_2;
        let d1 =
            m1 * lc1 * lc1 + m2 * (l1 * l1 + lc2 * lc2 + 2.0 * l1 * lc2 * theta2.cos()) + i1 + i2;
        let d2 = m2 * (lc2 * lc2 + l1 * lc2 * theta2.cos()) + i2;
        let phi2 = m2 * lc2 * g * (theta1 + theta2 - half_pi).cos();
        let phi1 = -m2 * l1 * lc2 * dtheta2 * dtheta2 * theta2.sin()
            - 2.0 * m2 * l1 * lc2 * dtheta2 * dtheta1 * theta2.sin()
            + (m1 * lc1 + m2 * l1) * g * (theta1 - half_pi).cos()
            + phi2;
        let ddtheta2 =
            (torque + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1 * dtheta1 * theta2.sin() - phi2)
                / (m2 * lc2 * lc2 + i2 - d2 * d2 / d1);
        let ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
        [dtheta1, dtheta2, ddtheta1, ddtheta2]
    }

    /// One fourth-order Runge-Kutta step of length `dt`.
    fn rk4(s: [f64; 4], torque: f64, dt: f64) -> [f64; 4] {
        let shifted = |k: [f64; 4], h: f64| std::array::from_fn(|i| s[i] + h * k[i]);
        let k1 = Self::derivatives(s, torque);
        let k2 = Self::derivatives(shifted(k1, dt / 2.0), torque);
        let k3 = Self::derivatives(shifted(k2, dt / 2.0), torque);
        let k4 = Self::derivatives(shifted(k3, dt), torque);
        std::array::from_fn(|i| s[i] + dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]))
    }
}

/// Wraps an angle into [-pi, pi] the way Gymnasium does (by whole turns).
fn wrap_angle(mut x: f64) -> f64 {
    use std::f64::consts::PI;
    while x > PI {
        x -= 2.0 * PI;
    }
    while x < -PI {
        x += 2.0 * PI;
    }
    x
}

impl Environment for Acrobot {
    fn name(&self) -> &str {
        "Acrobot-v1"
    }
    fn observation_size(&self) -> usize {
        6
    }
    fn actions(&self) -> usize {
        3
    }
    fn max_episode_steps(&self) -> usize {
        self.limit.max
    }

    fn reset(&mut self, seed: u64) -> Vec<f32> {
        self.state = uniform(seed, -0.1, 0.1);
        self.limit.elapsed = 0;
        self.observation()
    }

    fn step(&mut self, action: usize) -> Result<Step, NnError> {
        check_action(self.name(), action, 3)?;
        let [t1, t2, d1, d2] = Self::rk4(self.state, Self::TORQUES[action], Self::DT);
        self.state = [
            wrap_angle(t1),
            wrap_angle(t2),
            d1.clamp(-Self::MAX_VEL_1, Self::MAX_VEL_1),
            d2.clamp(-Self::MAX_VEL_2, Self::MAX_VEL_2),
        ];
        let [t1, t2, _, _] = self.state;
        let terminated = -t1.cos() - (t2 + t1).cos() > 1.0;
        Ok(Step {
            observation: self.observation(),
            reward: if terminated { 0.0 } else { -1.0 },
            terminated,
            truncated: self.limit.tick(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        env: &mut dyn Environment,
        seed: u64,
        mut policy: impl FnMut(&[f32]) -> usize,
    ) -> (f64, usize, Step) {
        let mut observation = env.reset(seed);
        let (mut total, mut steps) = (0.0, 0);
        loop {
            let step = env.step(policy(&observation)).unwrap();
            total += f64::from(step.reward);
            steps += 1;
            if step.terminated || step.truncated {
                return (total, steps, step);
            }
            observation = step.observation.clone();
        }
    }

    #[test]
    fn cartpole_follows_the_euler_equations() {
        let mut env = CartPole {
            state: [0.0; 4],
            limit: TimeLimit::new(500),
        };
        // From rest, a push right: temp = 10 / 1.1, theta_acc = -temp / (0.5 * (4/3 - 0.1/1.1)),
        // x_acc = temp - 0.05 * theta_acc / 1.1.
        let temp = 10.0 / 1.1;
        let theta_acc = -temp / (0.5 * (4.0 / 3.0 - 0.1 / 1.1));
        let x_acc = temp - 0.05 * theta_acc / 1.1;
        let step = env.step(1).unwrap();
        let expected = [0.0, 0.02 * x_acc, 0.0, 0.02 * theta_acc];
        for (got, want) in step.observation.iter().zip(expected) {
            assert!(
                (f64::from(*got) - want).abs() < 1e-6,
                "{:?} vs {expected:?}",
                step.observation
            );
        }
        assert_eq!(
            (step.reward, step.terminated, step.truncated),
            (1.0, false, false)
        );
        // Euler: the position and angle move with the previous velocities.
        let step = env.step(1).unwrap();
        assert!((f64::from(step.observation[0]) - 0.02 * 0.02 * x_acc).abs() < 1e-7);
        assert!((f64::from(step.observation[2]) - 0.02 * 0.02 * theta_acc).abs() < 1e-7);
    }

    #[test]
    fn cartpole_pole_falls_when_always_pushed_one_way() {
        let mut env = make_env("CartPole-v1", None).unwrap();
        for seed in 0..20 {
            for action in [0, 1] {
                let (total, steps, last) = run(env.as_mut(), seed, |_| action);
                assert!((8..=12).contains(&steps), "fell after {steps} steps");
                // The terminating step is rewarded too.
                assert_eq!(total, steps as f64);
                assert!(last.terminated && !last.truncated);
                let theta = last.observation[2].abs();
                assert!(theta > 0.2094 || last.observation[0].abs() > 2.4);
            }
        }
    }

    #[test]
    fn resets_are_seeded_and_bounded() {
        for name in ENVIRONMENT_NAMES {
            let mut env = make_env(name, None).unwrap();
            let first = env.reset(7);
            assert_eq!(env.reset(7), first);
            assert_ne!(env.reset(8), first);
            assert_eq!(first.len(), env.observation_size());
        }
        let mut cartpole = make_env("CartPole-v1", None).unwrap();
        assert!((0..50).all(|s| cartpole.reset(s).iter().all(|v| v.abs() <= 0.05)));
        let mut car = make_env("MountainCar-v0", None).unwrap();
        assert!((0..50).all(|s| {
            let o = car.reset(s);
            (-0.6..=-0.4).contains(&o[0]) && o[1] == 0.0
        }));
    }

    #[test]
    fn episodes_are_truncated_at_the_step_limit() {
        let mut env = make_env("CartPole-v1", Some(20)).unwrap();
        // Push against the pole's lean: survives 20 steps easily.
        let (total, steps, last) = run(env.as_mut(), 0, |o| usize::from(o[2] + 0.5 * o[3] > 0.0));
        assert_eq!((total, steps), (20.0, 20));
        assert!(last.truncated && !last.terminated);
        let mut car = make_env("MountainCar-v0", None).unwrap();
        assert_eq!(car.max_episode_steps(), 200);
        // Always pushing right is not enough to climb the hill.
        for seed in 0..10 {
            let (total, steps, last) = run(car.as_mut(), seed, |_| 2);
            assert_eq!((total, steps), (-200.0, 200));
            assert!(last.truncated && !last.terminated);
        }
    }

    #[test]
    fn mountain_car_is_climbed_by_pushing_with_the_velocity() {
        let mut env = make_env("MountainCar-v0", None).unwrap();
        for seed in 0..10 {
            let (total, steps, last) = run(env.as_mut(), seed, |o| if o[1] >= 0.0 { 2 } else { 0 });
            assert!(last.terminated && steps < 200, "seed {seed}: {steps} steps");
            assert_eq!(total, -(steps as f64));
            assert!(last.observation[0] >= 0.5);
        }
    }

    /// Kinetic plus potential energy of the acrobot (angles from hanging straight down).
    fn acrobot_energy(s: [f64; 4]) -> f64 {
        let [t1, t2, d1, d2] = s;
        let g = 9.8;
        let m11 = 0.25 + (1.0 + 0.25 + t2.cos()) + 2.0;
        let m12 = 0.25 + 0.5 * t2.cos() + 1.0;
        let m22 = 0.25 + 1.0;
        let kinetic = 0.5 * (m11 * d1 * d1 + 2.0 * m12 * d1 * d2 + m22 * d2 * d2);
        let potential = -(0.5 + 1.0) * g * t1.cos() - 0.5 * g * (t1 + t2).cos();
        kinetic + potential
    }

    #[test]
    fn acrobot_conserves_energy_without_torque_and_swings_with_it() {
        // The equations of motion conserve energy: integrated finely, it stays put...
        let mut state = [1.0, 0.5, 0.3, -0.2];
        let start = acrobot_energy(state);
        for _ in 0..5000 {
            state = Acrobot::rk4(state, 0.0, 0.001);
        }
        assert!((acrobot_energy(state) - start).abs() < 1e-9);
        // ...and the environment's 0.2 s steps keep it within a fraction of a percent.
        let mut env = Acrobot {
            state: [1.0, 0.5, 0.0, 0.0],
            limit: TimeLimit::new(500),
        };
        let start = acrobot_energy(env.state);
        for _ in 0..25 {
            env.step(1).unwrap();
            let drift = (acrobot_energy(env.state) - start).abs();
            assert!(drift < 0.1, "energy drifted by {drift}");
        }
        // At rest hanging down, a positive torque accelerates the second joint positively.
        let mut env = Acrobot {
            state: [0.0; 4],
            limit: TimeLimit::new(500),
        };
        let step = env.step(2).unwrap();
        assert!(
            step.observation[5] > 0.0 && step.observation[4] < 0.0,
            "{:?}",
            step.observation
        );
        let [t1, t2, d1, d2] = env.state;
        let expected = [t1.cos(), t1.sin(), t2.cos(), t2.sin(), d1, d2].map(|v| v as f32);
        assert_eq!(step.observation, expected);
        assert_eq!((step.reward, step.terminated), (-1.0, false));
    }

    #[test]
    fn acrobot_random_policy_rarely_reaches_the_goal() {
        use rand::Rng;
        let mut env = make_env("Acrobot-v1", None).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let full = (0..10)
            .filter(|&seed| {
                let (total, steps, last) = run(env.as_mut(), seed, |_| rng.random_range(0..3));
                assert_eq!(
                    total,
                    -(steps as f64) + if last.terminated { 1.0 } else { 0.0 }
                );
                steps == 500
            })
            .count();
        assert!(
            full >= 7,
            "only {full} of 10 random episodes lasted 500 steps"
        );
    }

    #[test]
    fn bad_actions_and_names_are_errors() {
        for name in ENVIRONMENT_NAMES {
            let mut env = make_env(name, None).unwrap();
            env.reset(0);
            let err = env.step(env.actions()).unwrap_err().to_string();
            assert!(err.contains("out of range"), "{err}");
        }
        let err = make_env("Pendulum-v1", None).err().unwrap().to_string();
        assert!(ENVIRONMENT_NAMES.iter().all(|n| err.contains(n)), "{err}");
        assert!(make_env("CartPole-v1", Some(501)).is_err());
        assert!(make_env("CartPole-v1", Some(0)).is_err());
    }
}
