"""Is the input usable? Level, clipping and digital silence of the audio ``listen`` hears, each warned about once.

"Never triggers live" can be the input rather than the model: a muted or wrong device sends exact zeros, a
gain set too low leaves words below what the model hears, one set too high clips them. The limits below are
where the shipped model's accuracy on validation clips falls (README, *For the live assistant*).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from voice_gru.decision import clock
from voice_gru.stream_features import DCBlocker

FLOOR_DB = -120.0  # the level reported for an all-zero chunk


@dataclass(frozen=True)
class LevelLimits:
    """When the input is worth a warning."""

    silence_s: float = 2.0  # every sample exactly 0 for this long: muted, or the wrong device
    full_scale: float = 0.999  # a sample at or above this magnitude is clipped (int16: from 32735)
    clip_share: float = 0.01  # a chunk with this share of its samples clipped is clipping
    quiet_s: float = 30.0  # nothing above quiet_dbfs in this much audio: too quiet, if a word was said ...
    quiet_dbfs: float = -50.0  # ... (validation words peaking at -50 dBFS: 90% right, at -60: 54%, at -40: 95%;
    # scripts/snr_curve.py --snr --peak-dbfs -40 -50 -60 6 12 20)
    band_s: float = 10.0  # the input's bandwidth is judged on this much sound (digital silence aside) ...
    band_every_s: float = 300.0  # ... at the start and then every this much sound: a source may change (a headset
    # that switches to its telephone profile); the spectrum costs RTF ~0.0002 while it runs, so it runs 1/30 of the time
    band_floor_db: float = -70.0  # nothing above a frequency means less than this share of the power there (16 kHz
    # streams: -22 dB above 4.2 kHz; 8 kHz audio resampled to 16 kHz: -132 dB; README, *Is it the microphone?*)

NARROW_COST = ("fewer commands are heard and other words fire more often (8 kHz telephone audio as measured in the "
               "README: a quarter fewer commands, four times the false accepts in an hour of speech)")
BAND_FFT = 512  # frames of the bandwidth check (31 Hz bins at 16 kHz, Hann window: no leakage from the low band)
DC_SETTLE_S = 0.3  # the level monitor's DC filter settles within this (5 time constants: an offset of 0.05 at -68 dBFS)
LEVEL_BLOCK_S = 0.1  # the median level is of blocks this long, whatever the chunks (it was of chunks: -57 dBFS at
# --chunk-ms 100, -33 at 5000 for the same file)
BAND_LOW_HZ = 150.0  # the bandwidth check's total starts here: mains hum (50/60 Hz) is not sound of the band


def narrowband(source: str, rate: int, model_rate: int = 16000) -> str | None:
    """The warning for audio recorded below the model's sample rate (None at or above it): resampling cannot
    bring back the band above half the recording's rate, and the model hears words by it too."""
    if rate >= model_rate:
        return None
    # testing stream (README, *Live detection*) resampled: 8 kHz 83 of 155 commands, 11.025 kHz 92, 16 kHz 110;
    # an hour of validation speech without commands (docs/RESULTS.md, *Narrowband audio*): 13 false accepts, 3 at 16 kHz
    return (f"{source} is recorded at {rate} Hz: nothing above {rate / 2000:g} kHz reaches the model (it was trained "
            f"on {model_rate} Hz audio), so {NARROW_COST}; record at {model_rate} Hz or more if you can")


def bandwidth(power: np.ndarray, sample_rate: int, floor_db: float = -70.0) -> float | None:
    """The lowest frequency (Hz, in 250 Hz steps from 3 kHz) above which a power spectrum (``BAND_FFT``-point
    bins, summed over frames) holds less than ``floor_db`` of its total: where a resampled recording's band
    ended. None when the band is full or the spectrum is empty."""
    freqs = np.fft.rfftfreq(2 * (power.size - 1), 1.0 / sample_rate)
    total = float(power[freqs >= BAND_LOW_HZ].sum())  # a hum or an offset below it says nothing of the band
    if total <= 0:
        return None
    above = np.cumsum(power[::-1])[::-1]  # power at and above each bin
    for f in np.arange(3000.0, 0.45 * sample_rate, 250.0):
        if above[np.searchsorted(freqs, f)] < total * 10 ** (floor_db / 10):
            return float(f)
    return None


def band_power(x: np.ndarray, block: int = 1024) -> np.ndarray:
    """The power spectrum of ``x`` for ``bandwidth``: ``BAND_FFT``-point Hann-windowed frames, summed (``block``
    frames at a time: an hour of audio in little memory); frames of digital silence left out (they say nothing of
    the band); a last partial frame too."""
    n = x.size // BAND_FFT * BAND_FFT
    power = np.zeros(BAND_FFT // 2 + 1)
    window = np.hanning(BAND_FFT)
    for i in range(0, n, block * BAND_FFT):
        frames = x[i:min(n, i + block * BAND_FFT)].reshape(-1, BAND_FFT)
        frames = frames[np.any(frames != 0, axis=1)]
        if frames.size:
            power += (np.abs(np.fft.rfft(frames * window, axis=1)) ** 2).sum(0)
    return power


def narrowband_content(source: str, top_hz: float, where: str) -> str:
    """The warning for audio that carries nothing above ``top_hz`` (``where``: which part of it was judged)."""
    return (f"{source} has carried nothing above {top_hz / 1000:g} kHz {where} (recorded at {2 * top_hz / 1000:g} kHz "
            f"or less and resampled?): the model hears words by the band above too, so {NARROW_COST}; record at "
            "16 kHz or more if you can")


def _db(power: float) -> float:
    return max(FLOOR_DB, 10.0 * np.log10(power)) if power > 0 else FLOOR_DB


def chunk_levels(x: np.ndarray, full_scale: float = 0.999) -> tuple[float, float, float]:
    """``(peak dBFS, RMS dBFS, clipped share)`` of float samples (full scale 1): the largest magnitude, the
    root-mean-square level (a full-scale square wave is 0 dBFS), the share of samples at ``full_scale`` or
    above; ``FLOOR_DB`` for silence."""
    if not x.size:
        return FLOOR_DB, FLOOR_DB, 0.0
    a = np.abs(x)
    peak = float(a.max())
    ms = float(np.dot(a, a)) / a.size
    return _db(peak * peak), _db(ms), clipped_share(a, full_scale)


def clipped_share(a: np.ndarray, full_scale: float = 0.999) -> float:
    """The share of samples at ``full_scale`` or above in magnitude (``a``: magnitudes or samples)."""
    return np.count_nonzero(np.abs(a) >= full_scale) / a.size if a.size else 0.0


class InputMonitor:
    """Watches the chunks ``listen`` hears and says once each when they are digital silence, clipped or too quiet.

    ``source`` names the input in the messages; ``hint`` follows the digital-silence warning (for a
    microphone: how to list devices). Memory is flat: chunk levels go into a 1 dB histogram.
    """

    def __init__(self, source: str, sample_rate: int = 16000, limits: LevelLimits = LevelLimits(),
                 warn: Callable[[str], None] | None = None, hint: str = "") -> None:
        self.source = source
        self.sample_rate = sample_rate
        self.limits = limits
        self.warn = warn
        self.hint = hint
        self.band_hint = ""  # follows the narrowband warning (raw PCM at a rate assumed, not known)
        self.samples = 0
        self.zero_run = 0  # samples of the current all-zero run
        self.zero_samples = 0  # all of them
        self.clipped_chunks = 0
        self.loudest = FLOOR_DB
        self.hist = np.zeros(int(-FLOOR_DB) + 1, dtype=np.int64)  # block RMS levels, 1 dB bins from FLOOR_DB
        self._level_rest = np.zeros(0, dtype=np.float32)  # the start of a block, from the chunks so far
        self.warned: set[str] = set()
        self.band_power = np.zeros(BAND_FFT // 2 + 1)  # the power spectrum of the window being judged
        self.band_samples = 0  # sound in it so far
        self.band_rest = np.zeros(0, dtype=np.float32)  # the start of a frame, from chunks shorter than one
        self.sound_samples = 0  # all sound heard (digital silence aside)
        self.band_judged = False  # the band was said to be narrow (once is enough)
        # levels and band are judged on what the recognizer hears: a cheap microphone's DC offset (~0.05) taken off
        self._dc = DCBlocker()

    @property
    def seconds(self) -> float:
        """Audio taken so far, in seconds."""
        return self.samples / self.sample_rate

    def update(self, chunk: np.ndarray) -> list[str]:
        """Take the next chunk (float samples, full scale 1); return the warnings it raised (also passed to ``warn``)."""
        lim, t0 = self.limits, self.seconds
        start = self.samples
        self.samples += chunk.size
        # the filter's first DC_SETTLE_S still carry an offset's onset (a resampler starts from zeros): not judged
        heard = self._dc(chunk)[max(0, int(DC_SETTLE_S * self.sample_rate) - start):]
        peak = chunk_levels(heard, lim.full_scale)[0]
        share = clipped_share(chunk, lim.full_scale)  # clipping happens before any filter
        new: list[str] = []
        if chunk.size and not chunk.any():  # exactly 0: a quiet chunk's samples near a zero crossing are sound
            self.zero_run += chunk.size
            self.zero_samples += chunk.size
            if self.zero_run >= lim.silence_s * self.sample_rate:
                new += self._once("silence", f"{self.source} has sent only digital silence (every sample 0) for "
                                             f"{self.zero_run / self.sample_rate:.1f} s: muted, the wrong input, or a noise gate?"
                                             + (f" {self.hint}" if self.hint else ""))
        else:
            self.zero_run = 0
            if not self.band_judged:
                new += self._band(heard, t0)
            self.sound_samples += chunk.size
        if share >= lim.clip_share:
            self.clipped_chunks += 1
            new += self._once("clip", f"{self.source} clips: {share:.1%} of the samples at {clock(t0)} are at full "
                                      "scale; lower the input gain (validation words driven 6 / 12 / 20 dB over full "
                                      "scale: 94 / 91 / 79% right, against 96%)")
        self.loudest = max(self.loudest, peak)
        self._add_levels(heard)
        if self.seconds >= lim.quiet_s:
            new += self._quiet(f"in the first {self.seconds:.0f} s")
        return new

    def end(self) -> list[str]:
        """The warnings of a run that ended before they were due: too quiet, judged on what was heard (a 20 s try
        ended with no word of why nothing fired)."""
        return self._quiet(f"in its {self.seconds:.1f} s") if self.seconds > DC_SETTLE_S else []

    def _quiet(self, when: str) -> list[str]:
        """The warning for input that never got loud enough to be a word said near the microphone."""
        if self.loudest >= self.limits.quiet_dbfs or self.zero_samples >= self.samples:  # all zeros: its own warning
            return []
        return self._once("quiet", f"nothing louder than {self.loudest:.0f} dBFS {when} of {self.source}: if a command "
                                   "was said, raise the input gain (validation words peaking at -40 / -50 / -60 dBFS: "
                                   "95 / 90 / 54% right)")

    def known_rate(self, rate: int) -> list[str]:
        """The input's own sample rate, where its header or device says it: below the model's, warned at once."""
        message = narrowband(self.source, rate, self.sample_rate)
        self.band_judged = self.band_judged or message is not None
        return self._once("narrowband", message) if message else []

    def _band(self, chunk: np.ndarray, t0: float) -> list[str]:
        """Add the chunk to the spectrum of the window being judged (``band_s`` of sound at the start of every
        ``band_every_s``); at its end, say whether its band ends early (a source resampled on its way here: a
        PulseAudio source at 8 kHz reaches PortAudio as 44.1 kHz)."""
        lim, sr = self.limits, self.sample_rate
        pos = self.sound_samples % max(1, int(lim.band_every_s * sr))  # where this chunk starts in the cycle
        if pos >= lim.band_s * sr:
            return []
        x = np.concatenate([self.band_rest, chunk]) if self.band_rest.size else chunk
        whole = x.size // BAND_FFT * BAND_FFT
        self.band_power += band_power(x[:whole])
        self.band_rest = x[whole:]
        self.band_samples += chunk.size
        if pos + chunk.size < lim.band_s * sr:
            return []
        top = bandwidth(self.band_power, sr, lim.band_floor_db)
        seconds = self.band_samples / sr
        self.band_power[:], self.band_samples, self.band_rest = 0.0, 0, self.band_rest[:0]
        if top is None:
            return []
        self.band_judged = True
        where = (f"in its first {seconds:.0f} s of sound" if self.sound_samples < lim.band_every_s * sr
                 else f"in {seconds:.0f} s of sound up to {clock(t0 + chunk.size / sr)}")
        return self._once("narrowband", narrowband_content(self.source, top, where)
                          + (f" {self.band_hint}" if self.band_hint else ""))

    def _once(self, key: str, message: str) -> list[str]:
        if key in self.warned:
            return []
        self.warned.add(key)
        if self.warn is not None:
            self.warn(message)
        return [message]

    def _add_levels(self, x: np.ndarray) -> None:
        """Count the RMS level of each whole ``LEVEL_BLOCK_S`` block of the audio heard so far."""
        n = max(1, int(LEVEL_BLOCK_S * self.sample_rate))
        x = np.concatenate([self._level_rest, x]) if self._level_rest.size else x
        whole = x.size // n * n
        if whole:
            blocks = x[:whole].reshape(-1, n).astype(np.float64)
            ms = np.einsum("ij,ij->i", blocks, blocks) / n
            levels = 10 * np.log10(np.maximum(ms, 10 ** (FLOOR_DB / 10)))
            np.add.at(self.hist, np.clip(np.round(levels - FLOOR_DB).astype(int), 0, self.hist.size - 1), 1)
        self._level_rest = np.array(x[whole:], dtype=np.float32)

    def median_rms_dbfs(self) -> float:
        """Median of the RMS levels of ``LEVEL_BLOCK_S`` blocks (to 1 dB; a part block alone where there is no
        whole one yet), ``FLOOR_DB`` before any audio."""
        n = int(self.hist.sum())
        if n == 0:
            return round(chunk_levels(self._level_rest)[1])
        return FLOOR_DB + int(np.searchsorted(np.cumsum(self.hist), (n + 1) // 2))

    def summary(self) -> str:
        """One line: loudest sample, median level, clipping and digital silence."""
        if self.samples == 0:
            return "input level: no audio arrived"
        if self.samples <= DC_SETTLE_S * self.sample_rate and self.zero_samples < self.samples:
            return (f"input level: {self.seconds:.2f} s heard, too little to judge; {self.clipped_chunks} clipping "
                    f"chunk(s); {self.zero_samples / self.sample_rate:.1f} s of digital silence")
        loudest = f"loudest sample {self.loudest:.1f} dBFS" if self.loudest > FLOOR_DB else "every sample 0"
        return (f"input level: {loudest}, median {self.median_rms_dbfs():.0f} dBFS RMS; "
                f"{self.clipped_chunks} clipping chunk(s); {self.zero_samples / self.sample_rate:.1f} s of digital silence")
