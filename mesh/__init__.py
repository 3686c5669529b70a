"""The MESH edge: NHS England's mesh-client talking to MESH for the domain's MESH channel
(flagging.mesh_channels, mesh_sending, mesh_tracking). It sends each practice's feed events,
polls MESH tracking and collects the ITK3 responses from our own mailbox. The messages
themselves are built by api/itk.py and handed in by the scheduler (cli/scheduler.py): this
package and api never import each other.
"""
