// OpenRouter's AI SDK provider (`@openrouter/ai-sdk-provider`) with the Vercel AI SDK (`ai`) against
// pixelgate's chat completions with image output.
//
// What the provider does (2.10.0, dist/index.mjs): providerOptions.openrouter is spread into the request
// body as it is, so `modalities` and `image_config` reach POST {baseURL}/chat/completions unchanged. From the
// answer it reads choices[0].message.images (streamed: choices[0].delta.images), each
// {"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}, into result.files: the media
// type from the data URL, the data after "base64,". The message's role must be "assistant", and a `usage`,
// when present, needs numeric prompt_tokens, completion_tokens and total_tokens.
import { createOpenRouter } from "@openrouter/ai-sdk-provider";
import { generateText, streamText } from "ai";

import { FLASH, main, pngPixels, recordingFetch, serverUrl } from "./common.mjs";

const requests = [];
const openrouter = () => createOpenRouter({ baseURL: `${serverUrl()}/v1`, apiKey: "unused", fetch: recordingFetch(requests) });
const options = { openrouter: { modalities: ["image", "text"], image_config: { aspect_ratio: "16:9" } } };
const PROMPT = "a watercolor fox, and say what you drew";

function describe(text, files, finishReason) {
  return {
    text,
    files: files.map((file) => ({ mediaType: file.mediaType, pixels: pngPixels(file.uint8Array) })),
    finishReason,
    requests,
  };
}

await main({
  async generate() {
    const result = await generateText({
      model: openrouter().chat(FLASH),
      prompt: PROMPT,
      providerOptions: options,
      maxRetries: 0,
    });
    return describe(result.text, result.files, result.finishReason);
  },

  // The same, streamed (SSE chunks; the image arrives in delta.images). streamText reports a failed call
  // through onError (its promises then reject with a generic NoOutputGeneratedError), so the call's own
  // error is kept and thrown here.
  async stream() {
    let failure = null;
    const result = streamText({
      model: openrouter().chat(FLASH),
      prompt: PROMPT,
      providerOptions: options,
      maxRetries: 0,
      onError: ({ error }) => {
        failure = error;
      },
    });
    let text, files, finishReason;
    try {
      [text, files, finishReason] = await Promise.all([result.text, result.files, result.finishReason]);
    } catch (error) {
      throw failure ?? error;
    }
    if (failure) throw failure;
    return describe(text, files, finishReason);
  },
});
