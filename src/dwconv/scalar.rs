//! The scalar reference: what every vector kernel is tested against, and
//! what runs the channels a vector kernel leaves over (`c0..c1`).

use super::Geometry;

/// Channels `c0..c1` of a channel-last 3x3 depthwise conv with bias and a
/// clamp to `[g.lo, g.hi]`: `x` is `[h, w, c]`, `k` is `[9, c]` (tap-major,
/// `ky * 3 + kx`), `b` is `[c]`, `y` is `[oh, ow, c]`. Taps landing in the
/// padding are skipped (zero padding).
pub fn dw3x3_range(
    g: &Geometry,
    x: &[f32],
    k: &[f32],
    b: &[f32],
    y: &mut [f32],
    c0: usize,
    c1: usize,
) {
    let (c, s) = (g.c, g.stride as isize);
    for oy in 0..g.oh {
        let iy0 = oy as isize * s - g.pad_top as isize;
        for ox in 0..g.ow {
            let ix0 = ox as isize * s - g.pad_left as isize;
            let out = &mut y[(oy * g.ow + ox) * c..][..c];
            for ch in c0..c1 {
                let mut acc = b[ch];
                for ky in 0..3 {
                    let iy = iy0 + ky as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    for kx in 0..3 {
                        let ix = ix0 + kx as isize;
                        if ix < 0 || ix >= g.w as isize {
                            continue;
                        }
                        let xi = (iy as usize * g.w + ix as usize) * c + ch;
                        acc += x[xi] * k[(ky * 3 + kx) * c + ch];
                    }
                }
                out[ch] = acc.max(g.lo).min(g.hi);
            }
        }
    }
}

/// All channels.
pub fn dw3x3(g: &Geometry, x: &[f32], k: &[f32], b: &[f32], y: &mut [f32]) {
    dw3x3_range(g, x, k, b, y, 0, g.c)
}
