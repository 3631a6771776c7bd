"""The Gradio page: controls on the left, a photo tab and a video tab on the right; the work is :mod:`.jobs`."""
import os.path as osp
from dataclasses import dataclass

import gradio as gr

from panininet.pipeline.background import BG_UPSAMPLERS
from panininet.pipeline.color import COLOR_FIX_METHODS
from panininet.pipeline.face_detection import DETECTORS
from panininet.web.jobs import PhotoSettings, RestorerCache, Sessions, restore_clip, restore_photos

SYSTEM_FONTS = dict(font=['ui-sans-serif', 'system-ui', 'sans-serif'], font_mono=['ui-monospace', 'monospace'])
INTRO = ('# panininet: restore the faces of photos and videos\n'
         'Drop photos (or a clip in the Video tab), choose the network and the settings, press Restore. '
         'The result is the same file `inference_panini.py` writes with the same settings.')


@dataclass
class WebService:
    """What the page's callbacks share: the network list, the loaded networks and the session folders."""
    networks: list
    cache: RestorerCache
    sessions: Sessions
    default_detector: str = 'retinaface_resnet50'

    def network(self, label):
        for n in self.networks:
            if n.label == label:
                return n
        raise ValueError(f'unknown network {label!r}')


def _notes_markdown(notes):
    return '\n'.join(f'- {n}' for n in notes) if notes else ''


def _upload_name(path):
    """The name the user gave the file (Gradio keeps it as the file name of its cached copy)."""
    return osp.basename(path)


def page_theme():
    """Gradio's default theme with the system's fonts (nothing fetched from a font service)."""
    return gr.themes.Default(**SYSTEM_FONTS)


def build_page(service):
    """The page as a ``gr.Blocks`` (call ``.queue()`` and ``.launch()`` on it).

    Args:
        service (WebService): Networks, cache and sessions.

    Returns:
        gradio.Blocks
    """
    labels = [n.label for n in service.networks]

    def settings_of(network, weight, upscale, bg, color, detector, centre, aligned):
        return PhotoSettings(service.network(network), float(weight), float(upscale), bg, color, detector,
                             bool(centre), bool(aligned))

    def run_photos(files, network, weight, upscale, bg, color, detector, centre, aligned, request: gr.Request,
                   progress=gr.Progress()):  # noqa: B008  (how Gradio asks for a progress bar)
        session = request.session_hash
        job, cancel = service.sessions.new_job(session)
        uploads = [(f, _upload_name(f)) for f in (files or [])]
        report = restore_photos(service.cache, settings_of(network, weight, upscale, bg, color, detector, centre,
                                                           aligned),
                                uploads, job, lambda fraction, text: progress(fraction, desc=text), cancel)
        views = [(r.name, r.before, r.after) for r in report.results]
        names = [v[0] for v in views]
        notes = list(report.notes)
        if report.results:
            notes.insert(0, f'Restored {len(report.results)} photo(s) in {report.seconds:.1f} s.')
        compare = (views[0][1], views[0][2]) if views else None
        faces = [(f, osp.basename(f)) for r in report.results for f in r.faces]
        downloads = [r.output for r in report.results] + ([report.zip_path] if report.zip_path else [])
        return (_notes_markdown(notes), compare, gr.update(choices=names, value=names[0] if names else None,
                                                           visible=len(names) > 1),
                faces, downloads or None, views)

    def show(name, views):
        for n, before, after in views or []:
            if n == name:
                return before, after
        return gr.update()

    def run_clip(clip, network, weight, upscale, bg, color, detector, centre, request: gr.Request,
                 progress=gr.Progress()):  # noqa: B008  (how Gradio asks for a progress bar)
        session = request.session_hash
        job, cancel = service.sessions.new_job(session)
        settings = settings_of(network, weight, upscale, bg, color, detector, centre, False)
        report = restore_clip(service.cache, settings, clip, _upload_name(clip) if clip else None, job,
                              lambda fraction, text: progress(fraction, desc=text), cancel)
        notes = list(report.notes)
        if report.output:
            notes.insert(0, f'Restored the clip in {report.seconds:.1f} s.')
        return _notes_markdown(notes), report.output, report.output

    def cancel(request: gr.Request):
        service.sessions.cancel(request.session_hash)
        return 'Cancelling: the job stops after its current step.'

    def end(request: gr.Request):
        service.sessions.end(request.session_hash)

    with gr.Blocks(title='panininet', analytics_enabled=False, delete_cache=(600, 3600)) as page:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1):
                network = gr.Radio(labels, value=labels[0] if labels else None, label='Network', elem_id='network')
                weight = gr.Slider(0, 1, value=0.5, step=0.05, elem_id='weight',
                                   label='Fidelity w (1: most of the input, 0: most of the prior, 0.5: as trained)')
                upscale = gr.Slider(1, 4, value=2, step=0.5, label='Upscale of the whole photo', elem_id='upscale')
                bg = gr.Radio(list(BG_UPSAMPLERS), value='none', elem_id='bg_upsampler',
                              label='Background upsampler (none: Lanczos; realesrgan needs its package)')
                color = gr.Radio(list(COLOR_FIX_METHODS), value='none', label='Colour fix', elem_id='color_fix')
                detector = gr.Radio(list(DETECTORS), value=service.default_detector, label='Face detector',
                                    elem_id='detector')
                centre = gr.Checkbox(label='Only the centre face', elem_id='only_center_face')
                aligned = gr.Checkbox(label='Aligned input (face crops: no detection, no paste back; photos only)',
                                      elem_id='aligned')
            with gr.Column(scale=2):
                with gr.Tab('Photos'):
                    photos = gr.File(label='Photos (drop one or several)', file_count='multiple', type='filepath',
                                     elem_id='photos')
                    with gr.Row():
                        run = gr.Button('Restore', variant='primary', elem_id='restore')
                        stop = gr.Button('Cancel', variant='stop', elem_id='cancel')
                    notes = gr.Markdown(elem_id='notes')
                    compare = gr.ImageSlider(label='Before / after', type='filepath', format='png',
                                             interactive=False, elem_id='compare')
                    shown = gr.Dropdown([], label='Photo shown', visible=False, elem_id='shown')
                    faces = gr.Gallery(label='Restored faces', columns=6, height=220, object_fit='contain',
                                       format='png', elem_id='faces')
                    downloads = gr.File(label="Downloads: the full-size results in the input's format, "
                                              'restored.zip: all of them', file_count='multiple',
                                        interactive=False, elem_id='downloads')
                    views = gr.State([])
                with gr.Tab('Video'):
                    clip = gr.File(label='Video clip', file_count='single', type='filepath', elem_id='clip')
                    with gr.Row():
                        run_v = gr.Button('Restore clip', variant='primary', elem_id='restore_clip')
                        stop_v = gr.Button('Cancel', variant='stop', elem_id='cancel_clip')
                    notes_v = gr.Markdown(elem_id='notes_clip')
                    video = gr.Video(label='Restored clip', interactive=False, elem_id='video')
                    video_file = gr.File(label='Download the restored clip', interactive=False, elem_id='clip_file')
        controls = [network, weight, upscale, bg, color, detector, centre]
        run.click(run_photos, [photos, *controls, aligned], [notes, compare, shown, faces, downloads, views],
                  concurrency_id='restore')
        shown.change(show, [shown, views], compare)
        run_v.click(run_clip, [clip, *controls], [notes_v, video, video_file], concurrency_id='restore')
        stop.click(cancel, None, notes, queue=False)
        stop_v.click(cancel, None, notes_v, queue=False)
        page.unload(end)
    return page
