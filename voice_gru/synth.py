"""Synthetic unknown words from espeak-ng, to widen the ``_unknown_`` class.

The shared Speech Commands subset has only 25 auxiliary words, three of which make up most of its
unknown clips, while a live assistant hears every other word a person says. Synthetic speech of a
few hundred other words, in espeak-ng's English voices at several speeds and pitches, teaches the
model what "not a command" sounds like. Only unknown words are synthesised, never commands (a
synthetic "stop" would teach the model espeak's accent, not people's), and the vocabulary leaves
out homophones and near-homophones of the ten default commands ("know", "write", "of", ...). A model of its own
command words (``data.commands``) has those words left out and every vocabulary word espeak-ng pronounces the same
("sea" for "see"); words that only sound near them ("bad" for "bed") stay: they teach the difference.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from voice_gru import COMMANDS
from voice_gru.errors import DatasetError

VOCABULARY = tuple("""
about above accept across act add after again age air all almost alone along also always among
and animal answer any apple area arm around art ask away baby back bad bag ball bank base basket
bath beach bean bear beat beautiful because become been before begin behind believe bell below
belt best better between big bike bill black blue board boat body bone book born both bottle box
boy bread break bridge bright bring brother brown build burn bus busy but buy cake call camera
can car card care carry case catch chair change cheap check cheese child choose church city class
clean clear clock close cloud coat coffee cold color come common cook cool copy corner count
country cover cow cross cup cut dance dark daughter day dead deep desk dinner doctor does dollar
door double dream dress drink drive dry duck during each early earth easy eat egg empty end enjoy
enough enter even evening ever every face fact fall family far farm fast father fear feel few
field fill film find fine finger finish fire first fish flat floor flower fly follow food foot
forest forget fork free fresh friend from front fruit full fun funny game garden gate gift girl
glass gold good grass gray great green group grow guess hair half hall hand hang hard hat have
head hear heart heavy hello help here high hill hold hole holiday home hope horse hot hour huge
human hundred hungry hurry ice idea important inside island jacket job join juice jump just keep
key kind king kitchen knife lady lake lamp land large last late laugh lazy leaf learn leave leg
lemon lesson letter light like line lion list listen little live long look lose loud love low
lucky lunch machine make man many map market matter maybe meat meet milk minute mirror miss money
monkey month moon morning mother mountain mouse mouth move much music must name narrow near neck
need never new news next nice night nothing number ocean office often oil old only open orange
order other outside over page paint paper park party pass pay pen pencil people pepper person
phone picture piece pink place plan plant plate play please pocket point police pool poor potato
pretty price print problem pull purple push queen question quick quiet rabbit radio rain read
ready really red remember rest rice rich ride ring river road rock room rose round run sad safe
salt same sand say school sea season second see sell send seven shape share sheep shirt shoe shop
short show shower side sign silver simple since sing sister sit size sky sleep slow small smell
smile snake snow soap soft some son song soon sorry sound soup south space speak special spoon
sport spring square stairs star start station stay step still stone storm story street strong
study sugar summer sun supper sure sweet swim table tail take talk tall taxi tea teacher team
tell ten test thank that then there thick thin thing think this though throw ticket tiger time
tired today together tomorrow tonight tooth towel tower train travel tree trouble true try turn
twelve under understand until use usual valley very video village visit voice wait walk wall
want warm wash watch water wave way weather week welcome well west wet what wheel when where
white who why wide wife wild win window wine winter wish with without woman wonder wood word
work world worry wrong yard year yellow yesterday young zoo
""".split())

VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan",
          "en-gb-x-gbcwmd")
VARIANTS = ("", "+m1", "+m2", "+m3", "+m4", "+m7", "+f1", "+f2", "+f3", "+f4", "+klatt", "+klatt2")


def pronunciations(words: Sequence[str], exe: str, voice: str = "en-us") -> list[str]:
    """espeak-ng's phonemes of each word, stress and pauses left out (one call for all of them)."""
    def clean(ph: str) -> str:
        return "".join(c for c in ph if c not in "',_:-")

    out = subprocess.run([exe, "-q", "-x", "-v", voice, ", ".join(words)], check=True, capture_output=True,
                         text=True).stdout
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    if len(lines) != len(words):  # a word espeak split or joined: ask word by word
        lines = [subprocess.run([exe, "-q", "-x", "-v", voice, w], check=True, capture_output=True,
                                text=True).stdout.strip() for w in words]
    return [clean(ln) for ln in lines]


def homophones(vocabulary: Sequence[str], words: Sequence[str], exe: str) -> set[str]:
    """The vocabulary words espeak-ng pronounces like one of ``words`` (in its American or British voice)."""
    found: set[str] = set()
    for voice in ("en-us", "en-gb"):
        sounds = set(pronunciations(words, exe, voice))
        found |= {w for w, ph in zip(vocabulary, pronunciations(vocabulary, exe, voice)) if ph in sounds}
    return found


def synthesize_unknown(n: int, out_dir: str | Path, seed: int = 0, sample_rate: int = 16000,
                       progress: bool = True, exclude: Sequence[str] = ()) -> list[str]:
    """``n`` one-second WAV clips of random vocabulary words in random espeak-ng voices (cached); ``exclude``: words
    never to say (a recipe's own commands, ``data.commands``: as ``_unknown_`` they would teach it to reject them)."""
    from tqdm.auto import tqdm

    from voice_gru.audio import load_audio, save_wav
    from voice_gru.data import fit_clip

    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    said = {w.lower() for w in exclude}
    own = sorted(said - set(COMMANDS))  # the vocabulary was written without the ten default commands' homophones
    if own and exe is None:  # which words sound like them is espeak-ng's to say, even for a cached set
        raise DatasetError(f"data.synthetic_unknown with own command words ({', '.join(own)}) needs espeak-ng, to leave "
                           "out the words it says like them (apt-get install espeak-ng, or run scripts/setup.sh)")
    alike = homophones(VOCABULARY, own, exe) if own and exe else set()
    left_out = sorted((set(VOCABULARY) & said) | alike)
    vocabulary = tuple(w for w in VOCABULARY if w not in left_out)
    # the 10 default commands are not in the vocabulary: their cache (and the shipped model's draws) is the same
    suffix = f"-without-{hashlib.sha1(' '.join(left_out).encode()).hexdigest()[:10]}" if left_out else ""
    out = Path(out_dir) / f"espeak-{n}-{seed}{suffix}"
    done = out / "COMPLETE"
    paths = [str(out / f"synth_{i:05d}.wav") for i in range(n)]
    if done.is_file():
        return paths
    if exe is None:
        raise DatasetError("data.synthetic_unknown needs espeak-ng (apt-get install espeak-ng, or run scripts/setup.sh)")
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    # espeak's own output goes to a file of this call alone: two trainings started together
    # (ensemble members) fill the same cache, and a shared scratch file was read half-written
    with tempfile.TemporaryDirectory(dir=out, prefix=".espeak-") as scratch:
        tmp = Path(scratch) / "raw.wav"
        for p in tqdm(paths, desc="synthesising unknown words", unit="clip", leave=False, disable=not progress):
            word = vocabulary[int(rng.integers(len(vocabulary)))]
            voice = VOICES[int(rng.integers(len(VOICES)))] + VARIANTS[int(rng.integers(len(VARIANTS)))]
            speed, pitch = int(rng.integers(110, 200)), int(rng.integers(20, 80))
            subprocess.run([exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(tmp), word],
                           check=True, capture_output=True)
            audio = load_audio(tmp, sample_rate)
            audio = audio / (np.abs(audio).max() + 1e-6) * float(10 ** rng.uniform(-1.5, -0.1))
            n_pad = int(rng.integers(0, max(1, sample_rate - audio.size)))  # the word anywhere in the second
            save_wav(p, fit_clip(np.pad(audio, (n_pad, 0)), sample_rate))
    done.write_text("ok\n")
    return paths
