import json
from test_google_provider import *  # noqa

def test_probe(gemini, sim):
    chat = gemini.chats.create(model=FLASH, config=image_config("1:1", "512", response_modalities=["TEXT","IMAGE"]))
    chat.send_message("a cat")
    chat.send_message("blue")
    b = generate_body(sim)
    for c in b["contents"]:
        print(c["role"], [{k: (v if k != "inlineData" else "...") for k, v in p.items()} for p in c["parts"]])
    print(sim.issued_signatures)
