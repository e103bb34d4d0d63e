//! Exact resource amounts.
//!
//! Ray accounts resources in fixed point with four decimal places (a GPU can be
//! shared as 0.25 or 0.0001 of a device), so [`Quantity`] stores ten-thousandths
//! as an integer: sums, comparisons and "how many trials fit on this GPU" are
//! exact, never float-rounded. [`Bytes`] is memory, parsed from the units users
//! write (`32GiB`, `512Mi`, `2G`).

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How many units make one whole resource (Ray's resolution: 0.0001).
pub const QUANTITY_SCALE: u64 = 10_000;

/// A non-negative resource amount with four decimal places, e.g. 0.25 GPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(u64);

/// Why a quantity could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not a decimal number.
    #[error("'{0}' is not a number")]
    NotANumber(String),
    /// Below zero.
    #[error("must not be negative")]
    Negative,
    /// More precision than Ray can represent.
    #[error("at most 4 decimal places are supported (Ray's resource resolution is 0.0001)")]
    TooPrecise,
    /// Larger than any real machine could offer.
    #[error("is absurdly large")]
    TooLarge,
}

impl Quantity {
    /// Zero of a resource.
    pub const ZERO: Quantity = Quantity(0);

    /// A whole number of units (e.g. 4 CPUs).
    pub const fn whole(n: u64) -> Quantity {
        Quantity(n * QUANTITY_SCALE)
    }

    /// From ten-thousandths of a unit.
    pub const fn from_units(units: u64) -> Quantity {
        Quantity(units)
    }

    /// Ten-thousandths of a unit.
    pub const fn units(self) -> u64 {
        self.0
    }

    /// True when no resource is asked for.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// True when this is a whole number (1, 2, 8), false for 0.5 or 1.25.
    pub const fn is_whole(self) -> bool {
        self.0.is_multiple_of(QUANTITY_SCALE)
    }

    /// The value as a float, for wire formats that want one (Ray's JSON).
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / QUANTITY_SCALE as f64
    }

    /// Reads a float exactly when it has at most four decimal places.
    pub fn from_f64(value: f64) -> Result<Quantity, QuantityError> {
        if !value.is_finite() {
            return Err(QuantityError::NotANumber(value.to_string()));
        }
        if value < 0.0 {
            return Err(QuantityError::Negative);
        }
        if value > 1e12 {
            return Err(QuantityError::TooLarge);
        }
        let scaled = value * QUANTITY_SCALE as f64;
        let rounded = scaled.round();
        // A float like 0.1 is not exact in binary; accept it when it is within
        // rounding noise of a representable value, refuse real extra digits.
        if (scaled - rounded).abs() > 1e-6 * scaled.abs().max(1.0) {
            return Err(QuantityError::TooPrecise);
        }
        Ok(Quantity(rounded as u64))
    }

    /// Sum, or `None` on overflow.
    pub fn checked_add(self, other: Quantity) -> Option<Quantity> {
        self.0.checked_add(other.0).map(Quantity)
    }

    /// Difference, or `None` when `other` is larger.
    pub fn checked_sub(self, other: Quantity) -> Option<Quantity> {
        self.0.checked_sub(other.0).map(Quantity)
    }

    /// `self * n`, or `None` on overflow.
    pub fn checked_mul(self, n: u64) -> Option<Quantity> {
        self.0.checked_mul(n).map(Quantity)
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix('-') {
            return match rest.parse::<f64>() {
                Ok(_) => Err(QuantityError::Negative),
                Err(_) => Err(QuantityError::NotANumber(s.to_string())),
            };
        }
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, f),
            None => (s, ""),
        };
        let digits = |t: &str| t.chars().all(|c| c.is_ascii_digit());
        if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
            return Err(QuantityError::NotANumber(s.to_string()));
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > 4 {
            return Err(QuantityError::TooPrecise);
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| QuantityError::TooLarge)?
        };
        let mut frac_units: u64 = if frac.is_empty() {
            0
        } else {
            frac.parse()
                .map_err(|_| QuantityError::NotANumber(s.to_string()))?
        };
        for _ in frac.len()..4 {
            frac_units *= 10;
        }
        whole
            .checked_mul(QUANTITY_SCALE)
            .and_then(|w| w.checked_add(frac_units))
            .filter(|u| *u <= 1_000_000_000_000 * QUANTITY_SCALE)
            .map(Quantity)
            .ok_or(QuantityError::TooLarge)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / QUANTITY_SCALE;
        let frac = self.0 % QUANTITY_SCALE;
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let frac = format!("{frac:04}");
            write!(f, "{whole}.{}", frac.trim_end_matches('0'))
        }
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.is_whole() {
            serializer.serialize_u64(self.0 / QUANTITY_SCALE)
        } else {
            serializer.serialize_f64(self.as_f64())
        }
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct QuantityVisitor;
        impl Visitor<'_> for QuantityVisitor {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a non-negative number with at most 4 decimal places")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                v.checked_mul(QUANTITY_SCALE)
                    .filter(|u| *u <= 1_000_000_000_000 * QUANTITY_SCALE)
                    .map(Quantity)
                    .ok_or_else(|| E::custom(QuantityError::TooLarge))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                if v < 0 {
                    return Err(E::custom(QuantityError::Negative));
                }
                self.visit_u64(v as u64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
                Quantity::from_f64(v).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(QuantityVisitor)
    }
}

/// An amount of memory in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub u64);

/// Why a memory amount could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BytesError {
    /// Not of the form `<number><unit>`.
    #[error("'{0}' is not a memory amount; write e.g. 32GiB, 512Mi, 2G or a number of bytes")]
    Malformed(String),
    /// The unit is not one we know.
    #[error("unknown unit '{0}'; use B, K/KB, M/MB, G/GB, T/TB (powers of 1000) or Ki/KiB, Mi/MiB, Gi/GiB, Ti/TiB (powers of 1024)")]
    UnknownUnit(String),
    /// Below zero.
    #[error("must not be negative")]
    Negative,
    /// Overflows 64 bits.
    #[error("is absurdly large")]
    TooLarge,
}

impl Bytes {
    /// Bytes in one GiB.
    pub const GIB: u64 = 1 << 30;
}

impl FromStr for Bytes {
    type Err = BytesError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.starts_with('-') {
            return Err(BytesError::Negative);
        }
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        if number.is_empty() {
            return Err(BytesError::Malformed(s.to_string()));
        }
        let multiplier: u64 = match unit.trim() {
            "" | "B" | "b" => 1,
            "K" | "KB" | "k" | "kB" => 1_000,
            "M" | "MB" => 1_000_000,
            "G" | "GB" => 1_000_000_000,
            "T" | "TB" => 1_000_000_000_000,
            "Ki" | "KiB" => 1 << 10,
            "Mi" | "MiB" => 1 << 20,
            "Gi" | "GiB" => 1 << 30,
            "Ti" | "TiB" => 1 << 40,
            other => return Err(BytesError::UnknownUnit(other.to_string())),
        };
        // Fractions like 1.5GiB are exact once multiplied, so scale through
        // Quantity's fixed point rather than a float.
        let q: Quantity = number
            .parse()
            .map_err(|_| BytesError::Malformed(s.to_string()))?;
        let total = (q.units() as u128) * (multiplier as u128) / (QUANTITY_SCALE as u128);
        u64::try_from(total)
            .map(Bytes)
            .map_err(|_| BytesError::TooLarge)
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (name, size) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{name}", self.0 / size);
            }
        }
        for (name, size) in UNITS {
            if self.0 >= size {
                return write!(f, "{:.1}{name}", self.0 as f64 / size as f64);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl Visitor<'_> for BytesVisitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of bytes or a string such as \"32GiB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Bytes, E> {
                u64::try_from(v)
                    .map(Bytes)
                    .map_err(|_| E::custom(BytesError::Negative))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Bytes, E> {
                if v < 0.0 {
                    return Err(E::custom(BytesError::Negative));
                }
                if v.fract() != 0.0 || v > u64::MAX as f64 {
                    return Err(E::custom("a byte count must be a whole number"));
                }
                Ok(Bytes(v as u64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(BytesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quantity_parses_fractions_exactly() {
        assert_eq!("0.25".parse::<Quantity>().unwrap().units(), 2_500);
        assert_eq!("1".parse::<Quantity>().unwrap(), Quantity::whole(1));
        assert_eq!(".5".parse::<Quantity>().unwrap().units(), 5_000);
        assert_eq!("0.0001".parse::<Quantity>().unwrap().units(), 1);
        assert_eq!("2.50000".parse::<Quantity>().unwrap().units(), 25_000);
    }

    #[test]
    fn quantity_refuses_bad_input() {
        assert_eq!("-1".parse::<Quantity>(), Err(QuantityError::Negative));
        assert_eq!(
            "0.00001".parse::<Quantity>(),
            Err(QuantityError::TooPrecise)
        );
        assert!(matches!(
            "abc".parse::<Quantity>(),
            Err(QuantityError::NotANumber(_))
        ));
        assert!(matches!(
            "".parse::<Quantity>(),
            Err(QuantityError::NotANumber(_))
        ));
        assert!(matches!(
            "1e3".parse::<Quantity>(),
            Err(QuantityError::NotANumber(_))
        ));
        assert_eq!(Quantity::from_f64(-0.5), Err(QuantityError::Negative));
        assert_eq!(Quantity::from_f64(0.123456), Err(QuantityError::TooPrecise));
        assert_eq!(Quantity::from_f64(1e30), Err(QuantityError::TooLarge));
    }

    #[test]
    fn quantity_json_round_trip() {
        let q: Quantity = serde_json::from_str("0.1").unwrap();
        assert_eq!(q.units(), 1_000);
        assert_eq!(serde_json::to_string(&q).unwrap(), "0.1");
        assert_eq!(serde_json::to_string(&Quantity::whole(8)).unwrap(), "8");
        let q: Quantity = serde_json::from_str("\"0.5\"").unwrap();
        assert_eq!(q.units(), 5_000);
        assert!(serde_json::from_str::<Quantity>("-2").is_err());
    }

    #[test]
    fn bytes_parse_units() {
        assert_eq!("32GiB".parse::<Bytes>().unwrap().0, 32 << 30);
        assert_eq!("512Mi".parse::<Bytes>().unwrap().0, 512 << 20);
        assert_eq!("2G".parse::<Bytes>().unwrap().0, 2_000_000_000);
        assert_eq!("1.5GiB".parse::<Bytes>().unwrap().0, 3 << 29);
        assert_eq!("1024".parse::<Bytes>().unwrap().0, 1024);
        assert!(matches!(
            "3 parsecs".parse::<Bytes>(),
            Err(BytesError::UnknownUnit(_))
        ));
        assert_eq!("-1G".parse::<Bytes>(), Err(BytesError::Negative));
        assert!(matches!(
            "GiB".parse::<Bytes>(),
            Err(BytesError::Malformed(_))
        ));
        assert_eq!(Bytes(32 << 30).to_string(), "32GiB");
        assert_eq!(Bytes(1536 << 20).to_string(), "1536MiB");
        assert_eq!(Bytes(1000).to_string(), "1000B");
    }

    proptest! {
        #[test]
        fn quantity_display_parses_back(units in 0u64..10_000_000_000) {
            let q = Quantity::from_units(units);
            prop_assert_eq!(q.to_string().parse::<Quantity>().unwrap(), q);
            let json = serde_json::to_string(&q).unwrap();
            prop_assert_eq!(serde_json::from_str::<Quantity>(&json).unwrap(), q);
        }
    }
}
