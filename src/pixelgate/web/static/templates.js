// The prompt templates of the vendor's image-generation guide (seed 004), as one-click starters.
// `template` is the guide's general form ([placeholders] to fill in); `example` is its worked prompt.
// `references`: how many images the template works on (0 for text-to-image; editing templates need 1 or more).
export const TEMPLATES = [
  // seed lines: heading 717, template 720-722, example 732 (Python sample; shown prompt 724)
  {
    id: "photorealistic",
    title: "Photorealistic scene",
    template: "A photorealistic [type of shot] of a [subject description] in a [setting description]. [Description of the light]. Shot from a [camera angle] with a [lens type].",
    example: "A photorealistic wide-angle shot of a vibrant coral reef teeming with tropical fish. Crystal-clear turquoise water with sunbeams filtering down from the surface, illuminating a sea turtle gliding gracefully over the coral. Shot from a low perspective with a wide-angle lens. Aspect ratio 16:9.",
    references: 0,
  },
  // seed lines: heading 779, template 782-784, example 793 (Python sample; shown prompt 786)
  {
    id: "sticker",
    title: "Stylized illustration / sticker",
    template: "A [style] of a [subject, with details about accessories or actions] doing [activity]. The design features [visual qualities, e.g., bold outlines, cel-shading, etc.] and [color/background preference].",
    example: "A kawaii-style sticker of a happy red panda wearing a tiny bamboo hat. It's munching on a green bamboo leaf. The design features bold, clean outlines, simple cel-shading, and a vibrant color palette. The background must be white.",
    references: 0,
  },
  // seed lines: heading 835, template 838-840, example 849 (Python sample; shown prompt 842)
  {
    id: "text-in-image",
    title: "Accurate text in images (logo)",
    template: "Create a [image type] for [brand/concept] with the text \"[text to render]\" in a [font style]. The design should be [style description], with a [color scheme].",
    example: "Create a modern, minimalist logo for a coffee shop called 'The Daily Grind'. The text should be in a clean, bold, sans-serif font. The color scheme is black and white. Put the logo in a circle. Use a coffee bean in a clever way.",
    references: 0,
  },
  // seed lines: heading 897, template 900-904, example 918 (Python sample; shown prompt 906-911)
  {
    id: "product-mockup",
    title: "Product mockup / commercial photography",
    template: "A high-resolution, studio-lit product photograph of a [product description] on a [background surface/description]. The lighting is a [lighting setup, e.g., three-point softbox setup] to [lighting purpose]. The camera angle is a [angle type] to showcase [specific feature]. Ultra-realistic, with sharp focus on [key detail]. [Aspect ratio].",
    example: "A high-resolution, studio-lit product photograph of a minimalist ceramic coffee mug in matte black, presented on a polished concrete surface. The lighting is a three-point softbox setup designed to create soft, diffused highlights and eliminate harsh shadows. The camera angle is a slightly elevated 45-degree shot to showcase its clean lines. Ultra-realistic, with sharp focus on the steam rising from the coffee. Square image.",
    references: 0,
  },
  // seed lines: heading 960, template 963-966, example 978 (Python sample; shown prompt 968-971)
  {
    id: "minimalist",
    title: "Minimalist & negative-space design",
    template: "A minimalist composition featuring a single [subject] positioned in the [bottom-right/top-left/etc.] of the frame. The background is a vast, empty [color] canvas, creating significant negative space. Soft, subtle lighting. [Aspect ratio].",
    example: "A minimalist composition featuring a single, delicate red maple leaf positioned in the bottom-right of the frame. The background is a vast, empty off-white canvas, creating significant negative space for text. Soft, diffused lighting from the top left. Square image.",
    references: 0,
  },
  // seed lines: heading 1020, template 1023, example 1033 (Python sample; shown prompt 1025)
  {
    id: "comic",
    title: "Sequential art (comic panels / storyboard)",
    template: "Make a 3 panel comic in a [style]. Put the character in a [type of scene].",
    example: "Make a 3 panel comic in a gritty, noir art style with high-contrast black and white inks. Put the character in a humurous scene.",
    references: 1,
  },
  // seed lines: heading 1167, template 1170-1172, example 1184 (Python sample; shown prompt 1174-1176)
  {
    id: "add-remove",
    title: "Add or remove elements",
    template: "Using the provided image of [subject], please [add/remove/modify] [element] to/from the scene. Ensure the change is [description of how the change should integrate].",
    example: "Using the provided image of my cat, please add a small, knitted wizard hat on its head. Make it look like it's sitting comfortably and not falling off.",
    references: 1,
  },
  // seed lines: heading 1254, template 1257-1259, example 1271 (Python sample; shown prompt 1261-1263)
  {
    id: "inpainting",
    title: "Inpainting (semantic masking)",
    template: "Using the provided image, change only the [specific element] to [new element/description]. Keep everything else in the image exactly the same, preserving the original style, lighting, and composition.",
    example: "Using the provided image of a living room, change only the blue sofa to be a vintage, brown leather chesterfield sofa. Keep the rest of the room, including the pillows on the sofa and the lighting, unchanged.",
    references: 1,
  },
  // seed lines: heading 1341, template 1344, example 1354 (Python sample; shown prompt 1346)
  {
    id: "style-transfer",
    title: "Style transfer",
    template: "Transform the provided photograph of [subject] into the artistic style of [artist/art style]. Preserve the original composition but render it with [description of stylistic elements].",
    example: "Transform the provided photograph of a modern city street at night into the artistic style of Vincent van Gogh's 'Starry Night'. Preserve the original composition of buildings and cars, but render all elements with swirling, impasto brushstrokes and a dramatic palette of deep blues and bright yellows.",
    references: 1,
  },
  // seed lines: heading 1422, template 1425-1427, example 1442 (Python sample; shown prompt 1429-1432)
  {
    id: "composition",
    title: "Advanced composition: combine several images",
    template: "Create a new image by combining the elements from the provided images. Take the [element from image 1] and place it with/on the [element from image 2]. The final image should be a [description of the final scene].",
    example: "Create a professional e-commerce fashion photo. Take the blue floral dress from the first image and let the woman from the second image wear it. Generate a realistic, full-body shot of the woman wearing the dress, with the lighting and shadows adjusted to match the outdoor environment.",
    references: 2,
  },
  // seed lines: heading 1528, template 1531-1534, example 1550 (Python sample; shown prompt 1536-1540)
  {
    id: "detail-preservation",
    title: "High-fidelity detail preservation",
    template: "Using the provided images, place [element from image 2] onto [element from image 1]. Ensure that the features of [element from image 1] remain completely unchanged. The added element should [description of how the element should integrate].",
    example: "Take the first image of the woman with brown hair, blue eyes, and a neutral expression. Add the logo from the second image onto her black t-shirt. Ensure the woman's face and features remain completely unchanged. The logo should look like it's naturally printed on the fabric, following the folds of the shirt.",
    references: 2,
  },
  // seed lines: heading 1620, template 1623-1624, example 1634 (Python sample; shown prompt 1626)
  {
    id: "sketch-to-photo",
    title: "Bring a sketch to life",
    template: "Turn this rough [medium] sketch of a [subject] into a [style description] photo. Keep the [specific features] from the sketch but add [new details/materials].",
    example: "Turn this rough pencil sketch of a futuristic car into a polished photo of the finished concept car in a showroom. Keep the sleek lines and low profile from the sketch but add metallic blue paint and neon rim lighting.",
    references: 1,
  },
  // seed lines: heading 1696, template 1699, example 1709 (Python sample; shown prompt 1701)
  {
    id: "character-turnaround",
    title: "Character consistency: 360° turnaround",
    template: "A studio portrait of [person] against [background], [looking forward/in profile looking right/etc.]",
    example: "A studio portrait of this man against white, in profile looking right",
    references: 1,
  },
];
