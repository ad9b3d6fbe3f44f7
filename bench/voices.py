# ruff: noqa: RUF001 - the texts are in their own scripts, on purpose
"""Synthetic speech in languages the corpus lacks, from espeak-ng (a Debian package with
voices for 100+ languages): for the language-identification measurements, the hard-audio
worst case and the non-English programmes.

espeak-ng's formant voices are robotic, which makes them hard audio for Whisper on purpose:
a low-resource language in an unusual voice is where its fallback and our second pass cost
the most. Each text is a few everyday sentences written for this file (no copyright).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Voice:
    whisper: str  # Whisper's language code
    espeak: str  # espeak-ng's voice
    text: str


VOICES: tuple[Voice, ...] = (
    Voice("en", "en-us", "Good morning. The train to the city leaves at eight, so we should "
          "hurry. My sister is waiting for us at the station with the tickets."),
    Voice("de", "de", "Guten Morgen. Der Zug in die Stadt fährt um acht Uhr ab, also müssen "
          "wir uns beeilen. Meine Schwester wartet mit den Fahrkarten am Bahnhof auf uns."),
    Voice("fr", "fr-fr", "Bonjour. Le train pour la ville part à huit heures, alors il faut se "
          "dépêcher. Ma sœur nous attend à la gare avec les billets."),
    Voice("es", "es", "Buenos días. El tren a la ciudad sale a las ocho, así que tenemos que "
          "darnos prisa. Mi hermana nos espera en la estación con los billetes."),
    Voice("it", "it", "Buongiorno. Il treno per la città parte alle otto, quindi dobbiamo "
          "sbrigarci. Mia sorella ci aspetta alla stazione con i biglietti."),
    Voice("pt", "pt", "Bom dia. O comboio para a cidade parte às oito, por isso temos de nos "
          "apressar. A minha irmã está à nossa espera na estação com os bilhetes."),
    Voice("nl", "nl", "Goedemorgen. De trein naar de stad vertrekt om acht uur, dus we moeten "
          "opschieten. Mijn zus wacht op ons op het station met de kaartjes."),
    Voice("pl", "pl", "Dzień dobry. Pociąg do miasta odjeżdża o ósmej, więc musimy się "
          "pospieszyć. Moja siostra czeka na nas na dworcu z biletami."),
    Voice("ru", "ru", "Доброе утро. Поезд в город отправляется в восемь, поэтому нам нужно "
          "торопиться. Моя сестра ждёт нас на вокзале с билетами."),
    Voice("uk", "uk", "Доброго ранку. Потяг до міста відходить о восьмій, тому нам треба "
          "поспішати. Моя сестра чекає на нас на вокзалі з квитками."),
    Voice("tr", "tr", "Günaydın. Şehre giden tren saat sekizde kalkıyor, bu yüzden acele "
          "etmeliyiz. Kız kardeşim biletlerle bizi istasyonda bekliyor."),
    Voice("el", "el", "Καλημέρα. Το τρένο για την πόλη φεύγει στις οκτώ, οπότε πρέπει να "
          "βιαστούμε. Η αδελφή μου μας περιμένει στον σταθμό με τα εισιτήρια."),
    Voice("fi", "fi", "Hyvää huomenta. Juna kaupunkiin lähtee kahdeksalta, joten meidän "
          "täytyy kiirehtiä. Siskoni odottaa meitä asemalla lippujen kanssa."),
    Voice("id", "id", "Selamat pagi. Kereta ke kota berangkat jam delapan, jadi kita harus "
          "bergegas. Kakak perempuan saya menunggu kita di stasiun dengan tiketnya."),
    Voice("sw", "sw", "Habari za asubuhi. Treni ya kwenda mjini inaondoka saa mbili, kwa hiyo "
          "lazima tuharakishe. Dada yangu anatusubiri kituoni na tiketi."),
    Voice("vi", "vi", "Chào buổi sáng. Tàu đi thành phố khởi hành lúc tám giờ, vì vậy chúng ta "
          "phải nhanh lên. Chị tôi đang đợi chúng ta ở nhà ga với vé tàu."),
    Voice("ar", "ar", "صباح الخير. القطار إلى المدينة يغادر في الساعة الثامنة، لذلك يجب أن "
          "نسرع. أختي تنتظرنا في المحطة مع التذاكر."),
    Voice("fa", "fa", "صبح بخیر. قطار شهر ساعت هشت حرکت می‌کند، پس باید عجله کنیم. خواهرم با "
          "بلیط‌ها در ایستگاه منتظر ماست."),
    Voice("he", "he", "בוקר טוב. הרכבת לעיר יוצאת בשמונה, אז אנחנו צריכים למהר. אחותי מחכה לנו "
          "בתחנה עם הכרטיסים."),
    Voice("hi", "hi", "सुप्रभात। शहर की ट्रेन आठ बजे निकलती है, इसलिए हमें जल्दी करनी चाहिए। "
          "मेरी बहन टिकट लेकर स्टेशन पर हमारा इंतज़ार कर रही है।"),
    Voice("bn", "bn", "সুপ্রভাত। শহরের ট্রেন আটটায় ছাড়ে, তাই আমাদের তাড়াতাড়ি করতে হবে। "
          "আমার বোন টিকিট নিয়ে স্টেশনে আমাদের জন্য অপেক্ষা করছে।"),
    Voice("te", "te", "శుభోదయం. నగరానికి రైలు ఎనిమిది గంటలకు బయలుదేరుతుంది, కాబట్టి మనం "
          "త్వరపడాలి. మా అక్క టిక్కెట్లతో స్టేషన్‌లో మన కోసం ఎదురుచూస్తోంది."),
    Voice("ta", "ta", "காலை வணக்கம். நகரத்திற்கு ரயில் எட்டு மணிக்கு புறப்படுகிறது, அதனால் "
          "நாம் விரைந்து செல்ல வேண்டும். என் அக்கா டிக்கெட்டுகளுடன் நிலையத்தில் "
          "காத்திருக்கிறாள்."),
    Voice("ko", "ko", "좋은 아침입니다. 시내로 가는 기차는 여덟 시에 출발하니까 서둘러야 해요. "
          "언니가 표를 가지고 역에서 우리를 기다리고 있어요."),
    Voice("ja", "ja", "おはようございます。町へ行く電車は八時に出発するので、"
          "急がなければなりません。姉が切符を持って駅で待っています。"),
    Voice("zh", "cmn", "早上好。去城里的火车八点出发，所以我们得快点。"
          "我姐姐拿着车票在车站等我们。"),
)

BY_LANGUAGE = {voice.whisper: voice for voice in VOICES}


def available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(voice: Voice, path: Path, *, words_per_minute: int = 150, pitch: int = 50,
          text: str | None = None, espeak: str | None = None) -> Path:
    """`text` (the voice's own by default) spoken into a 16 kHz mono WAV at `path`, by the
    voice's espeak-ng voice or `espeak` (a voice with a variant: "en-gb+f3")."""
    raw = path.with_suffix(".espeak.wav")
    subprocess.run(["espeak-ng", "-v", espeak or voice.espeak, "-s", str(words_per_minute),
                    "-p", str(pitch), "-w", str(raw), text or voice.text],
                   check=True, capture_output=True)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(raw), "-ac", "1",
                    "-ar", "16000", str(path)], check=True)
    raw.unlink()
    return path


# More lines per language for the dense programmes (bench.programme): dialogue, so that a
# scene is not one sentence looped.
LINES: dict[str, tuple[str, ...]] = {
    "en": (
        "I told you already, the keys were on the kitchen table when I left this morning.",
        "Nobody is going anywhere until we find out who opened the back door last night.",
        "If the weather holds, we can reach the harbour before the shops close.",
        "She said she would call back after the meeting, but I have not heard a thing.",
        "Do you remember the name of the little hotel near the river where we stayed?",
        "The doctor wants to see you again on Thursday, and he asked you to bring the letter.",
        "We have three hours of daylight left, so let us not waste them arguing.",
        "My grandfather built this house with his own hands, every single stone of it.",
    ),
    "de": (
        "Ich habe es dir schon gesagt, die Schlüssel lagen heute Morgen auf dem Küchentisch.",
        "Niemand geht irgendwohin, bis wir wissen, wer letzte Nacht die Hintertür geöffnet hat.",
        "Wenn das Wetter hält, erreichen wir den Hafen, bevor die Geschäfte schließen.",
        "Sie wollte nach der Besprechung zurückrufen, aber ich habe nichts gehört.",
        "Erinnerst du dich an den Namen des kleinen Hotels am Fluss, in dem wir waren?",
        "Der Arzt möchte dich am Donnerstag noch einmal sehen, bring bitte den Brief mit.",
        "Wir haben noch drei Stunden Tageslicht, also lass uns nicht streiten.",
        "Mein Großvater hat dieses Haus mit seinen eigenen Händen gebaut, jeden einzelnen Stein.",
    ),
    "fr": (
        "Je te l'ai déjà dit, les clés étaient sur la table de la cuisine ce matin.",
        "Personne ne part avant que l'on sache qui a ouvert la porte de derrière cette nuit.",
        "Si le temps se maintient, nous arriverons au port avant la fermeture des magasins.",
        "Elle a dit qu'elle rappellerait après la réunion, mais je n'ai rien entendu.",
        "Tu te souviens du nom du petit hôtel près de la rivière où nous avons dormi?",
        "Le médecin veut te revoir jeudi, et il t'a demandé d'apporter la lettre.",
        "Il nous reste trois heures de jour, alors ne les perdons pas à nous disputer.",
        "Mon grand-père a construit cette maison de ses propres mains, chaque pierre.",
    ),
}
# espeak-ng variants for several voices per language (voice+variant, pitch).
SPEAKERS: dict[str, tuple[tuple[str, int], ...]] = {
    "en": (("en-us", 45), ("en-gb+f3", 60), ("en-gb-scotland+m3", 35), ("en-029+f2", 70),
           ("en-gb-x-rp+m1", 40)),
    "de": (("de", 45), ("de+f3", 65), ("de+m3", 35), ("de+f2", 70)),
    "fr": (("fr-fr", 45), ("fr-fr+f3", 65), ("fr-be+m3", 35), ("fr-ch+f2", 70)),
}
